"""MobileNet v1 with the width multiplier alpha and the resolution multiplier rho.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv:1704.04861 (2017), Table 1. Channel counts follow TF-slim's
mobilenet_v1 (`max(int(d * alpha), 8)`), the reference behind the paper's figures.
rho is the input resolution itself (224, 192, 160, 128 in the paper): the network ends in
global average pooling, so it runs at any input of at least 32x32.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.layers import ConvNormAct, DepthwiseSeparable, scale_channels
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out

MIN_DEPTH = 8  # TF-slim's min_depth: no layer narrower than 8 channels, whatever alpha


class DWBlock(NamedTuple):
    channels: int  # output channels of the pointwise conv at alpha = 1
    stride: int  # stride of the depthwise conv


# Table 1 of the paper: conv 3x3/2 to 32 channels, then 13 depthwise-separable blocks.
#            c,   s
_V1_BLOCKS = (
    DWBlock(64, 1),
    DWBlock(128, 2), DWBlock(128, 1),
    DWBlock(256, 2), DWBlock(256, 1),
    DWBlock(512, 2), *[DWBlock(512, 1)] * 5,
    DWBlock(1024, 2), DWBlock(1024, 1),
)


class MobileNetV1(nn.Module):
    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.001,  # TF-slim's default keep_prob 0.999
        round_channels: int = 0,
    ) -> None:
        super().__init__()
        # 0: the paper's truncation (alpha 0.35 gives 11/22/44/...); N > 1: the user's choice
        # of torchvision's _make_divisible to multiples of N, which SIMD kernels run faster
        # (edgecnn.profile.channel_alignment says what the paper-exact widths cost).
        div = dict(divisor=round_channels) if round_channels > 1 else {}
        stem = scale_channels(32, alpha, min_channels=MIN_DEPTH, **div)
        layers: list[nn.Module] = [ConvNormAct(in_chans, stem, 3, stride=2)]
        channels = stem
        for block in _V1_BLOCKS:
            out = scale_channels(block.channels, alpha, min_channels=MIN_DEPTH, **div)
            layers.append(DepthwiseSeparable(channels, out, stride=block.stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 1024*alpha, H/32, W/32)
        x = self.pool(x).flatten(1)  # (B, 1024*alpha)
        return self.classifier(self.dropout(x))


@register_model(
    "mobilenet",
    family="mobilenet",
    aliases=("mobilenet_v1",),
    alpha=True,
    paper="Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile "
    "Vision Applications, arXiv:1704.04861 (2017)",
)
def mobilenet(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
              dropout: float = 0.001, round_channels: int = 0) -> MobileNetV1:
    """MobileNet v1 [Howard et al. 2017]: 4,231,976 params, 568.7M MACs at alpha 1, 224 px.
    round_channels=8: every width a multiple of 8 (torchvision's _make_divisible), not the
    paper's truncation."""
    return MobileNetV1(alpha=alpha, num_classes=num_classes, in_chans=in_chans, dropout=dropout,
                       round_channels=round_channels)
