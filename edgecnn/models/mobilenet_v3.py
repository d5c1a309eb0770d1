"""MobileNet v3 Large and Small with the width multiplier alpha.

Howard et al., "Searching for MobileNetV3", ICCV 2019 (arXiv:1905.02244), Tables 1 and 2,
in torchvision's configuration: squeeze-and-excitation with make_divisible(exp // 4, 8)
channels and a hard-sigmoid gate, hard-swish in the later stages, a last 1x1 conv of 6x the
last bottleneck's width, then global pooling and a 2-layer classifier (1280 hidden units for
Large, 1024 for Small; hard-swish; dropout 0.2). BatchNorm uses eps 1e-3, momentum 0.01.
alpha scales every width (make_divisible to 8) including the classifier's hidden layer, as
torchvision's width_mult. `reduced_tail` halves the last stage and the classifier's hidden
units, `dilated` trades the last stride for dilation 2 (Sec. 6.3, segmentation backbones).

Training it: momentum 0.01 makes BatchNorm's running statistics an average over the last
~100 steps. On a short run (mnist5k: 31 steps an epoch) they trail the weights by epochs,
and the network evaluated with them is not the one trained: 10 epochs at 32 px gave 96.3%
on the training batches and 15.7% held out, and the same weights with the statistics
recomputed gave 97.2% (benchmarks/train/bn_study.md, which also rules out hard-swish, SE at
1x1, dropout and the schedule). The model keeps the paper's 0.01; `edgecnn train` recomputes
the statistics over training images after every epoch instead ("precise BN", on by default,
`--precise-bn`; edgecnn/train/precise_bn.py), which changes no weight and no layer.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers import ConvNormAct, scale_channels
from edgecnn.layers.inverted_residual import InvertedResidual
from edgecnn.registry import register_model
from edgecnn.layers.init import init_he_fan_out

DIVISOR = 8
_ACTS = {"RE": nn.ReLU, "HS": nn.Hardswish}  # the paper's NL column
_BN = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)  # TF's defaults, kept by torchvision


class Bneck(NamedTuple):
    k: int  # depthwise kernel size
    exp: int  # expanded channels at alpha = 1
    c: int  # output channels at alpha = 1
    se: bool  # squeeze-and-excitation after the depthwise conv
    nl: str  # "RE" (ReLU) or "HS" (hard-swish)
    s: int  # stride
    tail: bool = False  # last stage: halved by reduced_tail, dilated by dilated


# Table 1 of the paper (Large): conv 3x3/2 to 16 channels (HS), 15 bottlenecks,
# conv 1x1 to 960, pool, 1x1 "conv" (here Linear) to 1280, then the classifier.
#          k, exp,   c,    se,   nl, s
_LARGE = (
    Bneck(3, 16, 16, False, "RE", 1),
    Bneck(3, 64, 24, False, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 1),
    Bneck(5, 72, 40, True, "RE", 2),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(5, 120, 40, True, "RE", 1),
    Bneck(3, 240, 80, False, "HS", 2),
    Bneck(3, 200, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 184, 80, False, "HS", 1),
    Bneck(3, 480, 112, True, "HS", 1),
    Bneck(3, 672, 112, True, "HS", 1),
    Bneck(5, 672, 160, True, "HS", 2, tail=True),
    Bneck(5, 960, 160, True, "HS", 1, tail=True),
    Bneck(5, 960, 160, True, "HS", 1, tail=True),
)

# Table 2 of the paper (Small): conv 3x3/2 to 16 channels (HS), 11 bottlenecks,
# conv 1x1 to 576, pool, 1x1 to 1024, then the classifier.
#          k, exp,  c,    se,   nl, s
_SMALL = (
    Bneck(3, 16, 16, True, "RE", 2),
    Bneck(3, 72, 24, False, "RE", 2),
    Bneck(3, 88, 24, False, "RE", 1),
    Bneck(5, 96, 40, True, "HS", 2),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 240, 40, True, "HS", 1),
    Bneck(5, 120, 48, True, "HS", 1),
    Bneck(5, 144, 48, True, "HS", 1),
    Bneck(5, 288, 96, True, "HS", 2, tail=True),
    Bneck(5, 576, 96, True, "HS", 1, tail=True),
    Bneck(5, 576, 96, True, "HS", 1, tail=True),
)

_CONFIGS = {"large": (_LARGE, 1280), "small": (_SMALL, 1024)}  # blocks, hidden units


class MobileNetV3(nn.Module):
    def __init__(
        self,
        arch: str,
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.2,
        reduced_tail: bool = False,
        dilated: bool = False,
    ) -> None:
        super().__init__()
        for label, value in (("reduced_tail", reduced_tail), ("dilated", dilated)):
            if not isinstance(value, bool):
                raise EdgeCNNError(f"{label} must be True or False, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
            0 <= dropout < 1
        ):
            raise EdgeCNNError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        blocks, hidden = _CONFIGS[arch]
        divider = 2 if reduced_tail else 1

        def width(c: int) -> int:
            return scale_channels(c, alpha, divisor=DIVISOR)

        channels = width(16)  # stem: conv 3x3/2 to 16 channels in both tables
        layers: list[nn.Module] = [ConvNormAct(in_chans, channels, 3, stride=2,
                                               norm_layer=_BN, act_layer=nn.Hardswish)]
        in_tail = False
        for b in blocks:
            # The tail's first block still expands its (unreduced) input; later ones are halved.
            exp = b.exp // divider if in_tail else b.exp
            out = b.c // divider if b.tail else b.c
            layers.append(InvertedResidual(
                channels, width(out), width(exp), kernel_size=b.k, stride=b.s,
                dilation=2 if (dilated and b.tail) else 1, act_layer=_ACTS[b.nl],
                se_reduction=4 if b.se else 0, se_gate=nn.Hardsigmoid, norm_layer=_BN,
            ))
            channels, in_tail = width(out), b.tail
        last_conv = 6 * channels  # 960 (Large) / 576 (Small) at alpha 1
        layers.append(ConvNormAct(channels, last_conv, 1, norm_layer=_BN, act_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        hidden = width(hidden // divider)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 6 * C_last, H/32, W/32); H/16 when dilated
        x = self.avgpool(x).flatten(1)  # (B, 6 * C_last)
        return self.classifier(x)


_PAPER = "Howard et al., Searching for MobileNetV3, ICCV 2019, arXiv:1905.02244"


@register_model("mobilenet_v3_large", family="mobilenet_v3", alpha=True, paper=_PAPER)
def mobilenet_v3_large(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                       dropout: float = 0.2, reduced_tail: bool = False,
                       dilated: bool = False) -> MobileNetV3:
    """MobileNet v3 Large [Howard et al., ICCV 2019]: 5,483,032 params, 216.6M MACs at 224 px."""
    return MobileNetV3("large", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       dropout=dropout, reduced_tail=reduced_tail, dilated=dilated)


@register_model("mobilenet_v3_small", family="mobilenet_v3", alpha=True, paper=_PAPER)
def mobilenet_v3_small(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                       dropout: float = 0.2, reduced_tail: bool = False,
                       dilated: bool = False) -> MobileNetV3:
    """MobileNet v3 Small [Howard et al., ICCV 2019]: 2,542,856 params, 56.5M MACs at 224 px."""
    return MobileNetV3("small", alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                       dropout=dropout, reduced_tail=reduced_tail, dilated=dilated)
