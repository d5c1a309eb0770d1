"""ShuffleNet v2 at the paper's four widths.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018 (arXiv:1807.11164), Table 5, laid out as torchvision's reference: conv 3x3/2 to
24 channels, max-pool 3x3/2, three stages of 4, 8, 4 units (the first of each strides),
conv 1x1, global average pooling, fc. The width multiplier does not scale channels
arithmetically: the paper picks each width's stage channels from its table, so `alpha`
is one of 0.5, 1.0, 1.5, 2.0 and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers import ConvNormAct
from edgecnn.layers.shuffle import ShuffleV2Block
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out

STEM = 24  # conv1 and max-pool keep 24 channels at every width
_REPEATS = (4, 8, 4)  # units in stage 2, 3, 4


class Widths(NamedTuple):
    stage2: int
    stage3: int
    stage4: int
    conv5: int


# Table 5 of the paper: output channels per stage for each width multiplier.
#                 stage2, stage3, stage4, conv5
_WIDTHS = {
    0.5: Widths(48, 96, 192, 1024),
    1.0: Widths(116, 232, 464, 1024),
    1.5: Widths(176, 352, 704, 1024),
    2.0: Widths(244, 488, 976, 2048),
}


class ShuffleNetV2(nn.Module):
    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        if alpha not in _WIDTHS:
            allowed = ", ".join(str(a) for a in _WIDTHS)
            raise EdgeCNNError(f"ShuffleNet v2 is defined for alpha in {{{allowed}}}, got {alpha}")
        widths = _WIDTHS[alpha]
        self.conv1 = ConvNormAct(in_chans, STEM, 3, stride=2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = STEM
        stages: list[nn.Module] = []
        for repeats, out in zip(_REPEATS, widths[:3]):
            units = [ShuffleV2Block(channels, out, stride=2)]
            units += [ShuffleV2Block(out, out) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            channels = out
        self.stage2, self.stage3, self.stage4 = stages
        self.conv5 = ConvNormAct(channels, widths.conv5, 1)
        self.fc = nn.Linear(widths.conv5, num_classes)
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))  # (B, 24, H/4, W/4)
        x = self.stage4(self.stage3(self.stage2(x)))  # (B, C4, H/32, W/32)
        x = self.conv5(x).mean((2, 3))  # (B, 1024 or 2048)
        return self.fc(x)


_PAPER = ("Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
          "Design, ECCV 2018, arXiv:1807.11164")


@register_model("shufflenet_v2", family="shufflenet_v2", alpha=True, paper=_PAPER)
def shufflenet_v2(*, alpha: float = 1.0, num_classes: int = 1000,
                  in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNet v2 [Ma et al., ECCV 2018] at width alpha in {0.5, 1.0, 1.5, 2.0} (Table 5)."""
    return ShuffleNetV2(alpha=alpha, num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenet_v2_x0_5", family="shufflenet_v2", paper=_PAPER)
def shufflenet_v2_x0_5(*, num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNet v2 0.5x [Ma et al., ECCV 2018]: 1,366,792 params, 40.5M MACs at 224 px."""
    return ShuffleNetV2(alpha=0.5, num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenet_v2_x1_0", family="shufflenet_v2", paper=_PAPER)
def shufflenet_v2_x1_0(*, num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNet v2 1.0x [Ma et al., ECCV 2018]: 2,278,604 params, 144.9M MACs at 224 px."""
    return ShuffleNetV2(alpha=1.0, num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenet_v2_x1_5", family="shufflenet_v2", paper=_PAPER)
def shufflenet_v2_x1_5(*, num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNet v2 1.5x [Ma et al., ECCV 2018]: 3,503,624 params, 295.8M MACs at 224 px."""
    return ShuffleNetV2(alpha=1.5, num_classes=num_classes, in_chans=in_chans)


@register_model("shufflenet_v2_x2_0", family="shufflenet_v2", paper=_PAPER)
def shufflenet_v2_x2_0(*, num_classes: int = 1000, in_chans: int = 3) -> ShuffleNetV2:
    """ShuffleNet v2 2.0x [Ma et al., ECCV 2018]: 7,393,996 params, 583.3M MACs at 224 px."""
    return ShuffleNetV2(alpha=2.0, num_classes=num_classes, in_chans=in_chans)
