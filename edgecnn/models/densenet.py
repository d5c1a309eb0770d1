"""DenseNet-BC for ImageNet: 121, 169, 201 and 264 layers.

Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017 (arXiv:1608.06993), Table 1.

Stem conv 7x7/2 to 2k channels + 3x3/2 max pool, four dense blocks of bottleneck layers
(growth rate k = 32, bottleneck width bn_size * k = 4k) joined by transition layers that
compress by theta = 0.5 and halve the resolution, then BN-ReLU, global average pooling and
one linear layer. 121/169/201 match torchvision to the unit. DenseNet-264 has no torchvision
model; this is the paper's Table 1 configuration (k = 32, blocks 6-12-64-48): 33,337,704
params and 5.75G MACs at 224 px, the count of the common k = 32 implementations (the test
derives it from the paper's description by a formula that also gives torchvision's three
counts). Counted the way the other names are (stem conv, two convs per dense layer, three
transitions, FC), that table has 265 weight layers; the name is the paper's. timm's
`densenet264d` (72.7M) is a different network: k = 48 and a three-conv deep stem.

The network ends in global average pooling. Minimum input: 61 px, where the last block runs
at 2x2, so every BatchNorm sees more than one value per channel and the network trains even
at batch size 1. Eval mode alone would run from 29 px (the stem's /4 and three 2x2/2
transitions need an 8x8 map after the stem), but the last block's 16-48 layers would then
normalise 1x1 maps, where statistics calibrated on a small batch make the logits blow up
(to inf or NaN for DenseNet-264).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.dense import DenseBlock, Transition
from edgecnn.registry import register_model
from edgecnn.layers.init import is_meta


class DenseConfig(NamedTuple):
    blocks: tuple[int, int, int, int]  # dense layers in each of the four blocks


# Table 1 of the paper, k = 32 for all four.
#                            layers per block
_CONFIGS: dict[int, DenseConfig] = {
    121: DenseConfig((6, 12, 24, 16)),
    169: DenseConfig((6, 12, 32, 32)),
    201: DenseConfig((6, 12, 48, 32)),
    264: DenseConfig((6, 12, 64, 48)),
}
_PAPER = ("Huang et al., Densely Connected Convolutional Networks, CVPR (2017), "
          "arXiv:1608.06993")


class DenseNet(nn.Module):
    def __init__(
        self,
        depth: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        growth_rate: int = 32,
        bn_size: int = 4,
        compression: float = 0.5,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        name = f"densenet{depth}"
        for label, value in (("growth_rate", growth_rate), ("bn_size", bn_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EdgeCNNError(f"{name}: {label} must be a positive integer, got {value!r}")
        if isinstance(compression, bool) or not isinstance(compression, (int, float)) \
                or not 0.0 < compression <= 1.0:
            raise EdgeCNNError(f"{name}: compression must be in (0, 1], got {compression!r}")
        if not isinstance(memory_efficient, bool):
            raise EdgeCNNError(
                f"{name}: memory_efficient must be True or False, got {memory_efficient!r}"
            )
        channels = 2 * growth_rate  # "the initial convolution layer comprises 2k convolutions"
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, channels, 7, 2, 3, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, padding=1),  # (B, 2k, H/4, W/4)
        ]
        blocks = _CONFIGS[depth].blocks
        for i, num_layers in enumerate(blocks):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, memory_efficient)
            layers.append(block)
            channels = block.out_channels
            if i < len(blocks) - 1:  # no transition after the last block
                transition = Transition(channels, compression)
                layers.append(transition)
                channels = transition.out_channels
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)  # (B, C, H/32, W/32)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x)).flatten(1)  # (B, C)
        return self.classifier(x)


def _init_weights(model: nn.Module) -> None:
    if is_meta(model):  # shapes only (profiling)
        return
    # torchvision's (and the authors' Torch code's): He normal convs, unit BN, zero biases.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


_SPEC = {"family": "densenet", "paper": _PAPER, "min_resolution": 61}  # shared by all four


@register_model("densenet121", **_SPEC)
def densenet121(*, num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32,
                bn_size: int = 4, compression: float = 0.5,
                memory_efficient: bool = False) -> DenseNet:
    """DenseNet-121 (BC, k=32) [Huang et al., CVPR 2017]: 7,978,856 params, 2.83G MACs."""
    return DenseNet(121, num_classes, in_chans, growth_rate, bn_size, compression,
                    memory_efficient)


@register_model("densenet169", **_SPEC)
def densenet169(*, num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32,
                bn_size: int = 4, compression: float = 0.5,
                memory_efficient: bool = False) -> DenseNet:
    """DenseNet-169 (BC, k=32) [Huang et al., CVPR 2017]: 14,149,480 params, 3.36G MACs."""
    return DenseNet(169, num_classes, in_chans, growth_rate, bn_size, compression,
                    memory_efficient)


@register_model("densenet201", **_SPEC)
def densenet201(*, num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32,
                bn_size: int = 4, compression: float = 0.5,
                memory_efficient: bool = False) -> DenseNet:
    """DenseNet-201 (BC, k=32) [Huang et al., CVPR 2017]: 20,013,928 params, 4.29G MACs."""
    return DenseNet(201, num_classes, in_chans, growth_rate, bn_size, compression,
                    memory_efficient)


@register_model("densenet264", **_SPEC)
def densenet264(*, num_classes: int = 1000, in_chans: int = 3, growth_rate: int = 32,
                bn_size: int = 4, compression: float = 0.5,
                memory_efficient: bool = False) -> DenseNet:
    """DenseNet-264 (BC, k=32) [Huang et al., CVPR 2017]: 33,337,704 params, 5.75G MACs.

    The paper's Table 1 network; no torchvision reference (see the module docstring).
    """
    return DenseNet(264, num_classes, in_chans, growth_rate, bn_size, compression,
                    memory_efficient)
