"""MobileNet v2 with the width multiplier alpha.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
(arXiv:1801.04381), Table 2. Channel counts follow torchvision's and TF-slim's reference:
every layer is alpha * c rounded to a multiple of 8 (`make_divisible`), except the last
1x1 conv, which keeps its 1280 channels for alpha < 1 (Sec. 6.1: "for multipliers less
than one, we apply width multiplier to all layers except the very last convolutional
layer") and grows with alpha > 1.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers import ConvNormAct, scale_channels
from edgecnn.layers.inverted_residual import InvertedResidual
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out

DIVISOR = 8  # every width is a multiple of 8 (torchvision's round_nearest)


class Bottleneck(NamedTuple):
    t: int  # expansion factor of the 1x1 expansion
    c: int  # output channels at alpha = 1
    n: int  # repeats; only the first one strides
    s: int  # stride of the first repeat


# Table 2 of the paper: conv 3x3/2 to 32 channels, 17 bottlenecks, conv 1x1 to 1280.
#             t,   c, n, s
_V2_BLOCKS = (
    Bottleneck(1, 16, 1, 1),
    Bottleneck(6, 24, 2, 2),
    Bottleneck(6, 32, 3, 2),
    Bottleneck(6, 64, 4, 2),
    Bottleneck(6, 96, 3, 1),
    Bottleneck(6, 160, 3, 2),
    Bottleneck(6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        _check_dropout(dropout)
        channels = scale_channels(32, alpha, divisor=DIVISOR)
        layers: list[nn.Module] = [ConvNormAct(in_chans, channels, 3, stride=2,
                                               act_layer=nn.ReLU6)]
        for t, c, n, s in _V2_BLOCKS:
            out = scale_channels(c, alpha, divisor=DIVISOR)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, round(channels * t),
                                               stride=s if i == 0 else 1, act_layer=nn.ReLU6))
                channels = out
        self.last_channels = scale_channels(1280, max(1.0, alpha), divisor=DIVISOR)
        layers.append(ConvNormAct(channels, self.last_channels, 1, act_layer=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.last_channels, num_classes)
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 1280 * max(1, alpha), H/32, W/32)
        x = self.pool(x).flatten(1)  # (B, 1280 * max(1, alpha))
        return self.classifier(self.dropout(x))


def _check_dropout(dropout: float) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise EdgeCNNError(f"dropout must be a probability in [0, 1), got {dropout!r}")


@register_model(
    "mobilenet_v2",
    family="mobilenet_v2",
    alpha=True,
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, "
    "CVPR 2018, arXiv:1801.04381",
)
def mobilenet_v2(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.2) -> MobileNetV2:
    """MobileNet v2 [Sandler et al., CVPR 2018]: 3,504,872 params, 300.8M MACs at 224 px."""
    return MobileNetV2(alpha=alpha, num_classes=num_classes, in_chans=in_chans, dropout=dropout)
