"""SqueezeNext-23, -23v5, -34 and -44, with the width multiplier and the grouped variant.

Gholami et al., "SqueezeNext: Hardware-Aware Neural Network Design", CVPR Workshops 2018,
arXiv:1803.10615. The layout follows the authors' Caffe prototxts
(github.com/amirgholami/SqueezeNext: 1.0-SqNxt-23, 1.0-G-SqNxt-23, 1.0-SqNxt-23v5,
2.0-SqNxt-23, 2.0-SqNxt-23v5) rather than later re-implementations:

- stem: 7x7 conv, stride 2, no padding, 64 channels, BN, ReLU, then a 3x3/2 max pool
  (Caffe rounds up); 227x227 input, so stage 1 runs at 55x55;
- four stages of SqNxt blocks at 32, 64, 128, 256 channels times alpha; every stage opens
  with a projection block (1x1 conv shortcut), strided in stages 2-4;
- a 1x1 conv to 128 channels, BN, ReLU, global average pooling, a bias-free linear layer.

The width multiplier scales the four stages only: the stem stays at 64 and the last conv at
128 channels in 2.0-SqNxt-23 and 2.0-SqNxt-23v5, and only then do the paper's 1.4M / 2.4M
counts for 1.5 / 2.0-SqNxt-23 come out. (osmr/imgclsmob's sqnxt23_w2 scales both and adds
conv biases: 2,583,752 instead of our 2,361,728.)

Blocks per stage: 23 = [6, 6, 8, 1] and 23v5 = [2, 4, 14, 1] (prototxts), 44 =
[12, 12, 16, 2] (the 2.0-SqNxt-44 prototxt the authors released with their caffemodels,
kept in jolibrain/deepdetect's templates). No SqNxt-34 definition is public; we take
[9, 9, 12, 2], halfway between 23 and 44 (32 blocks + stem + last conv = 34 layers).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct, scale_channels
from edgecnn.layers.sqnxt import SqNxtBlock
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out

PAPER = ("Gholami et al., SqueezeNext: Hardware-Aware Neural Network Design, CVPR Workshops "
         "2018, arXiv:1803.10615")
STEM_CHANNELS = 64  # not scaled by alpha (prototxts)
HEAD_CHANNELS = 128  # the 1x1 conv before pooling, not scaled by alpha (prototxts)


class SqNxtStage(NamedTuple):
    channels: int  # block output channels at alpha = 1
    stride: int  # stride of the stage's first block


# c, s: the four stages after the stem and max pool (55x55 -> 28 -> 14 -> 7 at 227 px).
_STAGES = (SqNxtStage(32, 1), SqNxtStage(64, 2), SqNxtStage(128, 2), SqNxtStage(256, 2))

# Blocks per stage for each depth.
_DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "23": (6, 6, 8, 1),
    "23v5": (2, 4, 14, 1),  # the hardware-friendlier v5: fewer blocks at high resolution
    "34": (9, 9, 12, 2),  # inferred, see the module docstring
    "44": (12, 12, 16, 2),
}


class SqueezeNext(nn.Module):
    def __init__(
        self,
        depth: str = "23",
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise EdgeCNNError(f"groups must be a positive integer, got {groups!r}")
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, STEM_CHANNELS, 7, stride=2, padding=0),
            nn.MaxPool2d(3, 2, ceil_mode=True),
        )
        channels = STEM_CHANNELS
        stages: list[nn.Module] = []
        index = 0  # global block index: the separable convs swap order every block
        for stage, n in zip(_STAGES, _DEPTHS[depth]):
            out = scale_channels(stage.channels, alpha)
            blocks: list[nn.Module] = []
            for j in range(n):
                blocks.append(SqNxtBlock(
                    channels, out, stride=stage.stride if j == 0 else 1, groups=groups,
                    transposed=index % 2 == 1, projection=j == 0,
                ))
                channels, index = out, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ConvNormAct(channels, HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes, bias=False)  # fc1000: no bias
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (B, 64, 55, 55) at 227 px
        x = self.stages(x)  # (B, 256*alpha, 7, 7)
        x = self.pool(self.head(x)).flatten(1)  # (B, 128)
        return self.classifier(x)


def _register(name: str):  # noqa: ANN202  (a decorator factory)
    return register_model(name, family="squeezenext", alpha=True, resolution=227,
                          min_resolution=9, paper=PAPER)


@_register("squeezenext23")
def squeezenext23(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                  groups: int = 1) -> SqueezeNext:
    """1.0-SqNxt-23 [Gholami et al., CVPR Workshops 2018, arXiv:1803.10615]: 717,280 params.

    278.0M MACs at 227 px. alpha: 1.0, 1.5, 2.0 in the paper. groups=2: G-SqNxt-23 (543,072 params).
    """
    return SqueezeNext("23", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       groups=groups)


@_register("squeezenext23v5")
def squeezenext23v5(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                    groups: int = 1) -> SqueezeNext:
    """SqNxt-23v5 [Gholami et al., CVPR Workshops 2018, arXiv:1803.10615]: 913,632 params.

    279.0M MACs at 227 px. Blocks per stage [2, 4, 14, 1]: fewer blocks at high resolution,
    which the paper's accelerator simulation runs faster.
    """
    return SqueezeNext("23v5", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       groups=groups)


@_register("squeezenext34")
def squeezenext34(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                  groups: int = 1) -> SqueezeNext:
    """SqNxt-34 [Gholami et al., CVPR Workshops 2018, arXiv:1803.10615]: 1,052,560 params.

    356.7M MACs at 227 px. Blocks per stage [9, 9, 12, 2], inferred (no public definition):
    see the module notes.
    """
    return SqueezeNext("34", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       groups=groups)


@_register("squeezenext44")
def squeezenext44(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                  groups: int = 1) -> SqueezeNext:
    """SqNxt-44 [Gholami et al., CVPR Workshops 2018, arXiv:1803.10615]: 1,238,976 params.

    428.2M MACs at 227 px. Blocks per stage [12, 12, 16, 2] (the 2.0-SqNxt-44 prototxt);
    2.0-SqNxt-44 is the paper's VGG-19-level model with 4.4M parameters.
    """
    return SqueezeNext("44", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       groups=groups)
