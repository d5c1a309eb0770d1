"""VGG: very deep stacks of 3x3 convolutions, configurations A, B, D and E.

Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), Table 1.

Five stages of 3x3 convolutions (stride 1, padding 1, ReLU), each closed by a 2x2/2 max pool,
then three fully connected layers 4096-4096-classes with dropout 0.5 after the first two.
The `_bn` variants (not in the paper; the form most people train today) put BatchNorm
between each convolution and its ReLU and keep the convolution's bias, exactly like
torchvision, so the parameter counts match torchvision's to the unit.

An adaptive average pool to 7x7 (the map side at 224 px, where it is the identity) lets the
classifier run at any input. Five 2x2/2 pools need at least 32 px.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out


class Stage(NamedTuple):
    channels: int  # output channels of every conv in the stage
    convs: int  # number of 3x3 convs before the stage's max pool


# Table 1 of the paper, one row per configuration, one (c, n) pair per stage.
#               c, n
_CONFIGS: dict[str, tuple[Stage, ...]] = {
    "A": (Stage(64, 1), Stage(128, 1), Stage(256, 2), Stage(512, 2), Stage(512, 2)),  # 11
    "B": (Stage(64, 2), Stage(128, 2), Stage(256, 2), Stage(512, 2), Stage(512, 2)),  # 13
    "D": (Stage(64, 2), Stage(128, 2), Stage(256, 3), Stage(512, 3), Stage(512, 3)),  # 16
    "E": (Stage(64, 2), Stage(128, 2), Stage(256, 4), Stage(512, 4), Stage(512, 4)),  # 19
}
_POOL_SIDE = 7  # the last stage's side at 224 px
_HIDDEN = 4096
_PAPER = ("Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
          "Recognition, ICLR (2015), arXiv:1409.1556")


class VGG(nn.Module):
    def __init__(
        self,
        config: str,
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if config not in _CONFIGS:
            raise EdgeCNNError(f"vgg: unknown configuration {config!r}; one of A, B, D, E")
        if not 0.0 <= dropout < 1.0:
            raise EdgeCNNError(f"vgg: dropout must be in [0, 1), got {dropout!r}")
        norm = nn.BatchNorm2d if batch_norm else None
        layers: list[nn.Module] = []
        channels = in_chans
        for stage in _CONFIGS[config]:
            for _ in range(stage.convs):
                # bias=True even before BN: torchvision's vgg*_bn keeps it.
                layers.append(ConvNormAct(channels, stage.channels, 3, norm_layer=norm,
                                          bias=True))
                channels = stage.channels
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(_POOL_SIDE)  # identity at 224 px
        self.classifier = nn.Sequential(
            nn.Linear(channels * _POOL_SIDE**2, _HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(_HIDDEN, _HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(_HIDDEN, num_classes),
        )
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))  # (B, 512, 7, 7)
        return self.classifier(x.flatten(1))  # (B, 25088) -> (B, num_classes)


_SPEC = {"family": "vgg", "paper": _PAPER, "min_resolution": 32}  # shared by all eight names


@register_model("vgg11", **_SPEC)
def vgg11(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-11, config A [Simonyan & Zisserman, ICLR 2015]: 132,863,336 params, 7.61G MACs."""
    return VGG("A", num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model("vgg13", **_SPEC)
def vgg13(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-13, config B [Simonyan & Zisserman, ICLR 2015]: 133,047,848 params, 11.31G MACs."""
    return VGG("B", num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model("vgg16", **_SPEC)
def vgg16(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-16, config D [Simonyan & Zisserman, ICLR 2015]: 138,357,544 params, 15.47G MACs."""
    return VGG("D", num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model("vgg19", **_SPEC)
def vgg19(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-19, config E [Simonyan & Zisserman, ICLR 2015]: 143,667,240 params, 19.63G MACs."""
    return VGG("E", num_classes=num_classes, in_chans=in_chans, dropout=dropout)


@register_model("vgg11_bn", **_SPEC)
def vgg11_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-11 with BN [Simonyan & Zisserman, ICLR 2015]: 132,868,840 params, 7.61G MACs."""
    return VGG("A", batch_norm=True, num_classes=num_classes, in_chans=in_chans,
               dropout=dropout)


@register_model("vgg13_bn", **_SPEC)
def vgg13_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-13 with BN [Simonyan & Zisserman, ICLR 2015]: 133,053,736 params, 11.31G MACs."""
    return VGG("B", batch_norm=True, num_classes=num_classes, in_chans=in_chans,
               dropout=dropout)


@register_model("vgg16_bn", **_SPEC)
def vgg16_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-16 with BN [Simonyan & Zisserman, ICLR 2015]: 138,365,992 params, 15.47G MACs."""
    return VGG("D", batch_norm=True, num_classes=num_classes, in_chans=in_chans,
               dropout=dropout)


@register_model("vgg19_bn", **_SPEC)
def vgg19_bn(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5) -> VGG:
    """VGG-19 with BN [Simonyan & Zisserman, ICLR 2015]: 143,678,248 params, 19.63G MACs."""
    return VGG("E", batch_norm=True, num_classes=num_classes, in_chans=in_chans,
               dropout=dropout)
