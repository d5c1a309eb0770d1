"""ResNet, ResNeXt and SE-ResNet, with SE and stochastic depth as options of every depth.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, arXiv:1512.03385,
Table 1, in torchvision's "v1.5" form (stride on the bottleneck's 3x3 conv, option B
projection shortcuts): the exact parameter counts of torchvision's resnet18..152.
ResNeXt (Xie et al., CVPR 2017) is the bottleneck network with cardinality `groups` and
bottleneck width `width_per_group`; SE-ResNet (Hu et al., CVPR 2018) gates each residual
branch with Squeeze-and-Excitation (`se_reduction`, the paper's r); stochastic depth (Huang
et al., ECCV 2016) drops whole residual branches per sample in training (`stochastic_depth`,
the survival probability p_L of the last block). The stem and the stage builder here are
shared with the pre-activation ResNet (preact_resnet.py).
The network ends in global average pooling: it runs at any input of at least 32x32, where
the last feature map is 1x1.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct
from edgecnn.layers.init import is_meta
from edgecnn.layers.residual import (
    BasicBlock,
    Bottleneck,
    ResidualBlock,
    bottleneck_width,
    survival_probs,
)
from edgecnn.registry import register_model

HE_2016 = ("He et al., Deep Residual Learning for Image Recognition, CVPR 2016, "
           "arXiv:1512.03385")
XIE_2017 = ("Xie et al., Aggregated Residual Transformations for Deep Neural Networks, "
            "CVPR 2017, arXiv:1611.05431")
HU_2018 = "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507"
STEM_CHANNELS = 64


class Stage(NamedTuple):
    width: int  # width of the stage's 3x3 convs; the stage outputs width * block.expansion
    stride: int  # stride of the stage's first block


# Table 1 of He et al. 2016: conv2_x .. conv5_x (conv2_x follows the stem's max pool).
#       c, s
STAGES = (Stage(64, 1), Stage(128, 2), Stage(256, 2), Stage(512, 2))

# Blocks per stage (n) of each depth, Table 1; 200 from He et al., ECCV 2016 (pre-activation).
# Depths below 50 use basic blocks, the others bottlenecks.
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}


def resnet_stem(in_chans: int) -> nn.Sequential:
    """conv 7x7/2 + BN + ReLU, max pool 3x3/2: (B, C, H, W) -> (B, 64, H/4, W/4)."""
    return nn.Sequential(
        ConvNormAct(in_chans, STEM_CHANNELS, 7, stride=2),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def make_stages(
    block: ResidualBlock,
    blocks_per_stage: tuple[int, ...],
    in_channels: int,
    *,
    groups: int = 1,
    width_per_group: int = 64,
    se_reduction: int | None = None,
    stochastic_depth: float | None = None,
    first_block_kwargs: Mapping[str, Any] | None = None,
) -> tuple[OrderedDict[str, nn.Sequential], int]:
    """The four stages of `STAGES` with `blocks_per_stage` units each; (stages, out channels).

    Stochastic depth numbers the units 1..L across the whole network, so the survival
    probability decays linearly from the first unit (highest) to the last (p_L).
    `first_block_kwargs` go to the network's first unit only (pre-activation: no own BN-ReLU).
    """
    if len(blocks_per_stage) != len(STAGES):
        raise EdgeCNNError(f"a ResNet has {len(STAGES)} stages, got {len(blocks_per_stage)}")
    bottleneck_width(STAGES[0].width, groups, width_per_group)  # one-line errors up front
    probs = iter(survival_probs(sum(blocks_per_stage), stochastic_depth))
    stages: OrderedDict[str, nn.Sequential] = OrderedDict()
    channels = in_channels
    for index, (stage, n) in enumerate(zip(STAGES, blocks_per_stage, strict=True)):
        units = []
        for i in range(n):
            extra = first_block_kwargs if index == 0 and i == 0 and first_block_kwargs else {}
            unit = block(channels, stage.width, stage.stride if i == 0 else 1, groups=groups,
                         base_width=width_per_group, se_reduction=se_reduction,
                         survival_prob=next(probs), **extra)
            units.append(unit)
            channels = unit.out_channels
        stages[f"stage{index + 1}"] = nn.Sequential(*units)
    return stages, channels


def init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He init of the convs, BN at (1, 0); optionally every residual branch starts at zero.

    zero_init_residual (Goyal et al., "Accurate, Large Minibatch SGD", 2017; torchvision's
    option): each unit then starts as the identity, which helps large-batch training.
    The classifier keeps PyTorch's default init, as torchvision's ResNet does.
    """
    if is_meta(model):  # shapes only (profiling)
        return
    if not isinstance(zero_init_residual, bool):
        raise EdgeCNNError(f"zero_init_residual must be True or False, got {zero_init_residual!r}")
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:  # the SE gate's 1x1 convs
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


class ResNet(nn.Module):
    """Post-activation ResNet / ResNeXt / SE-ResNet of any depth in `DEPTHS`."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks_per_stage: tuple[int, ...],
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
        stages, channels = make_stages(
            block, blocks_per_stage, STEM_CHANNELS, groups=groups,
            width_per_group=width_per_group, se_reduction=se_reduction,
            stochastic_depth=stochastic_depth,
        )
        self.features = nn.Sequential(OrderedDict(stem=resnet_stem(in_chans), **stages))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self, zero_init_residual)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 512 * expansion, H/32, W/32)
        x = self.pool(x).flatten(1)  # (B, 512 * expansion)
        return self.classifier(x)


def _resnet(depth: int, **kwargs: Any) -> ResNet:
    block = Bottleneck if depth >= 50 else BasicBlock
    return ResNet(block, DEPTHS[depth], **kwargs)


# --- ResNet (He et al. 2016): the figures are torchvision's, MACs at 224 px. ---------------

@register_model("resnet18", family="resnet", paper=HE_2016)
def resnet18(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int | None = None,
             stochastic_depth: float | None = None, zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 [He et al., Deep Residual Learning for Image Recognition, CVPR 2016,
    arXiv:1512.03385]: 11,689,512 params, 1.81G MACs."""
    return _resnet(18, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


@register_model("resnet34", family="resnet", paper=HE_2016)
def resnet34(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int | None = None,
             stochastic_depth: float | None = None, zero_init_residual: bool = False) -> ResNet:
    """ResNet-34 [He et al., Deep Residual Learning for Image Recognition, CVPR 2016,
    arXiv:1512.03385]: 21,797,672 params, 3.66G MACs."""
    return _resnet(34, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


@register_model("resnet50", family="resnet", paper=HE_2016)
def resnet50(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int | None = None,
             stochastic_depth: float | None = None, zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 [He et al., Deep Residual Learning for Image Recognition, CVPR 2016,
    arXiv:1512.03385]: 25,557,032 params, 4.09G MACs."""
    return _resnet(50, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


@register_model("resnet101", family="resnet", paper=HE_2016)
def resnet101(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int | None = None,
              stochastic_depth: float | None = None, zero_init_residual: bool = False) -> ResNet:
    """ResNet-101 [He et al., Deep Residual Learning for Image Recognition, CVPR 2016,
    arXiv:1512.03385]: 44,549,160 params, 7.80G MACs."""
    return _resnet(101, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


@register_model("resnet152", family="resnet", paper=HE_2016)
def resnet152(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int | None = None,
              stochastic_depth: float | None = None, zero_init_residual: bool = False) -> ResNet:
    """ResNet-152 [He et al., Deep Residual Learning for Image Recognition, CVPR 2016,
    arXiv:1512.03385]: 60,192,808 params, 11.51G MACs."""
    return _resnet(152, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


# --- ResNeXt (Xie et al. 2017): cardinality x bottleneck width, e.g. 32x4d. ----------------

@register_model("resnext50_32x4d", family="resnext", paper=XIE_2017)
def resnext50_32x4d(*, num_classes: int = 1000, in_chans: int = 3, groups: int = 32,
                    width_per_group: int = 4, se_reduction: int | None = None,
                    stochastic_depth: float | None = None,
                    zero_init_residual: bool = False) -> ResNet:
    """ResNeXt-50 (32x4d) [Xie et al., Aggregated Residual Transformations for Deep Neural
    Networks, CVPR 2017, arXiv:1611.05431]: 25,028,904 params, 4.23G MACs."""
    return _resnet(50, num_classes=num_classes, in_chans=in_chans, groups=groups,
                   width_per_group=width_per_group, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


@register_model("resnext101_32x8d", family="resnext", paper=XIE_2017)
def resnext101_32x8d(*, num_classes: int = 1000, in_chans: int = 3, groups: int = 32,
                     width_per_group: int = 8, se_reduction: int | None = None,
                     stochastic_depth: float | None = None,
                     zero_init_residual: bool = False) -> ResNet:
    """ResNeXt-101 (32x8d) [Xie et al., Aggregated Residual Transformations for Deep Neural
    Networks, CVPR 2017, arXiv:1611.05431]: 88,791,336 params, 16.41G MACs."""
    return _resnet(101, num_classes=num_classes, in_chans=in_chans, groups=groups,
                   width_per_group=width_per_group, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


# --- SE-ResNet (Hu et al. 2018): ResNet-50 with an SE gate (r = 16) on every branch. -------

@register_model("se_resnet50", family="se_resnet", paper=HU_2018)
def se_resnet50(*, num_classes: int = 1000, in_chans: int = 3, se_reduction: int = 16,
                stochastic_depth: float | None = None,
                zero_init_residual: bool = False) -> ResNet:
    """SE-ResNet-50 [Hu et al., Squeeze-and-Excitation Networks, CVPR 2018, arXiv:1709.01507]:
    28,088,024 params (Cadene's pretrainedmodels / timm seresnet50), 4.09G MACs."""
    if se_reduction is None:
        raise EdgeCNNError("se_resnet50 needs an SE reduction ratio; use resnet50 for none")
    return _resnet(50, num_classes=num_classes, in_chans=in_chans, se_reduction=se_reduction,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)
