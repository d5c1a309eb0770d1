"""Pre-activation ResNet: full pre-activation units, BN -> ReLU -> conv.

He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016, arXiv:1603.05027:
Fig. 4(e) units on the ImageNet ResNet (stem conv 7x7/2 + BN + ReLU + max pool, the stages of
Table 1 of He et al. 2016), a final BN + ReLU before the global pooling since the last unit's
sum is not activated. The layout follows fb.resnet.torch's preresnet.lua, the code the paper's
ImageNet models came from: the first unit skips its own BN-ReLU (the stem just did it), and
projection shortcuts (1x1 conv, no BN) read the pre-activated input.
Convolutions and the classifier are exactly those of the post-activation ResNet of the same
depth; only the BN layers move. Stage building, SE, stochastic depth and zero-init are shared
with resnet.py.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from edgecnn.layers.residual import PreActBasicBlock, PreActBottleneck
from edgecnn.models.resnet import DEPTHS, STEM_CHANNELS, init_weights, make_stages, resnet_stem
from edgecnn.registry import register_model

HE_2016B = ("He et al., Identity Mappings in Deep Residual Networks, ECCV 2016, "
            "arXiv:1603.05027")


class PreActResNet(nn.Module):
    """Pre-activation ResNet of any depth in `DEPTHS` (basic units below 50 layers)."""

    def __init__(
        self,
        depth: int,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        se_reduction: int | None = None,
        stochastic_depth: float | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        block = PreActBottleneck if depth >= 50 else PreActBasicBlock
        stages, channels = make_stages(
            block, DEPTHS[depth], STEM_CHANNELS, groups=groups,
            width_per_group=width_per_group, se_reduction=se_reduction,
            stochastic_depth=stochastic_depth, first_block_kwargs={"preact": False},
        )
        self.features = nn.Sequential(OrderedDict(
            stem=resnet_stem(in_chans),
            **stages,
            norm=nn.BatchNorm2d(channels),  # the last sum is not activated: BN-ReLU it here
            act=nn.ReLU(inplace=True),
        ))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self, zero_init_residual)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 512 * expansion, H/32, W/32)
        x = self.pool(x).flatten(1)  # (B, 512 * expansion)
        return self.classifier(x)


# Builders: the parameter counts are ours (no torchvision reference); the convolutions and the
# classifier match the post-activation ResNet of the same depth weight for weight.

@register_model("preact_resnet18", family="preact_resnet", paper=HE_2016B)
def preact_resnet18(*, num_classes: int = 1000, in_chans: int = 3,
                    se_reduction: int | None = None, stochastic_depth: float | None = None,
                    zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-18 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 11,687,720 params, 1.81G MACs at 224 px."""
    return PreActResNet(18, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)


@register_model("preact_resnet34", family="preact_resnet", paper=HE_2016B)
def preact_resnet34(*, num_classes: int = 1000, in_chans: int = 3,
                    se_reduction: int | None = None, stochastic_depth: float | None = None,
                    zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-34 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 21,795,880 params, 3.66G MACs at 224 px."""
    return PreActResNet(34, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)


@register_model("preact_resnet50", family="preact_resnet", paper=HE_2016B)
def preact_resnet50(*, num_classes: int = 1000, in_chans: int = 3,
                    se_reduction: int | None = None, stochastic_depth: float | None = None,
                    zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-50 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 25,549,352 params, 4.09G MACs at 224 px."""
    return PreActResNet(50, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)


@register_model("preact_resnet101", family="preact_resnet", paper=HE_2016B)
def preact_resnet101(*, num_classes: int = 1000, in_chans: int = 3,
                     se_reduction: int | None = None, stochastic_depth: float | None = None,
                     zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-101 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 44,541,480 params, 7.80G MACs at 224 px."""
    return PreActResNet(101, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)


@register_model("preact_resnet152", family="preact_resnet", paper=HE_2016B)
def preact_resnet152(*, num_classes: int = 1000, in_chans: int = 3,
                     se_reduction: int | None = None, stochastic_depth: float | None = None,
                     zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-152 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 60,185,128 params, 11.51G MACs at 224 px."""
    return PreActResNet(152, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)


@register_model("preact_resnet200", family="preact_resnet", paper=HE_2016B)
def preact_resnet200(*, num_classes: int = 1000, in_chans: int = 3,
                     se_reduction: int | None = None, stochastic_depth: float | None = None,
                     zero_init_residual: bool = False) -> PreActResNet:
    """Pre-activation ResNet-200 [He et al., Identity Mappings in Deep Residual Networks,
    ECCV 2016, arXiv:1603.05027]: 64,666,152 params, 15.0G MACs at 224 px."""
    return PreActResNet(200, num_classes=num_classes, in_chans=in_chans,
                        se_reduction=se_reduction, stochastic_depth=stochastic_depth,
                        zero_init_residual=zero_init_residual)
