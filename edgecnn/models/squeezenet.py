"""SqueezeNet 1.0 and 1.1, with the paper's microarchitecture metaparameters and bypasses.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
model size", arXiv:1602.07360 (2016). Table 1 / Fig. 2 give the macroarchitecture: conv1,
eight Fire modules (fire2..fire9), max pools, dropout 0.5, conv10 to the classes, global
average pooling. Section 5 generates the Fire widths from five metaparameters: Fire module
i (0..7) expands to e_i = base_e + incr_e * floor(i / freq) channels, pct_3x3 of them in
the 3x3 branch, and squeezes to SR * e_i. The defaults (128, 128, 2, 0.5, 0.125) are the
published network. Section 6 adds bypasses: "simple" (identity around the Fire modules
whose input and output widths match: fire3, 5, 7, 9) and "complex" (also a 1x1 conv with
bias around the others: fire2, 4, 6, 8).

SqueezeNet 1.1 (the authors' repository, github.com/forresti/SqueezeNet) has a 3x3 conv1 of
64 channels and pools after conv1, fire3 and fire5: same accuracy, 2.4x less computation.
Parameter counts equal torchvision's (1,248,424 and 1,235,496). The paper feeds 227x227
crops; we declare torchvision's 224 (the network is fully convolutional up to the global
pooling, so both work). The width multiplier alpha is ours, not the paper's: it scales
every Fire channel count (conv1 keeps its width), and alpha = 1 is the exact network.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import scale_channels
from edgecnn.layers.fire import Fire
from edgecnn.registry import register_model
from edgecnn.layers.init import is_meta

PAPER = ("Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
         "<0.5MB model size, arXiv:1602.07360 (2016)")
NUM_FIRE = 8  # fire2 .. fire9
BYPASSES = ("none", "simple", "complex")


class SqueezeNetVersion(NamedTuple):
    stem_channels: int  # conv1 output channels
    stem_kernel: int  # conv1 kernel (stride 2, no padding)
    pool_after: tuple[int, ...]  # Fire indices (0 = fire2) followed by a 3x3/2 max pool


# conv1 is always followed by a max pool; the pools after Fire modules move between versions.
#                      c,  k,  pool after
_VERSIONS = {
    "1_0": SqueezeNetVersion(96, 7, (2, 6)),  # pool after fire4 and fire8 (Table 1)
    "1_1": SqueezeNetVersion(64, 3, (1, 3)),  # pool after fire3 and fire5
}


class FireWidths(NamedTuple):
    squeeze: int
    expand1x1: int
    expand3x3: int


def fire_widths(
    index: int, base_e: int, incr_e: int, freq: int, pct_3x3: float, sr: float
) -> FireWidths:
    """Widths of Fire module `index` (0 = fire2) from the Section 5 metaparameters."""
    expand = base_e + incr_e * (index // freq)
    expand3x3 = int(expand * pct_3x3)
    squeeze = int(expand * sr)
    if expand3x3 < 1 or expand3x3 >= expand or squeeze < 1:
        raise EdgeCNNError(
            f"fire{index + 2}: e={expand}, pct_3x3={pct_3x3}, SR={sr} leave a Fire branch with "
            "no channels"
        )
    return FireWidths(squeeze, expand - expand3x3, expand3x3)


class SqueezeNet(nn.Module):
    def __init__(
        self,
        version: str = "1_0",
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        base_e: int = 128,
        incr_e: int = 128,
        freq: int = 2,
        pct_3x3: float = 0.5,
        sr: float = 0.125,
        bypass: str = "none",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        _check_options(base_e, incr_e, freq, pct_3x3, sr, bypass, dropout)
        cfg = _VERSIONS[version]
        channels = cfg.stem_channels
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, channels, cfg.stem_kernel, stride=2),
            nn.ReLU(inplace=True),
            _max_pool(),
        ]
        for i in range(NUM_FIRE):
            w = fire_widths(i, base_e, incr_e, freq, pct_3x3, sr)
            squeeze, e1, e3 = (scale_channels(c, alpha) for c in w)
            out = e1 + e3
            kind = "none"
            if bypass != "none" and channels == out:
                kind = "identity"
            elif bypass == "complex":
                kind = "conv"
            layers.append(Fire(channels, squeeze, e1, e3, bypass=kind))
            if i in cfg.pool_after:
                layers.append(_max_pool())
            channels = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(channels, num_classes, 1),  # conv10
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # (B, 512*alpha, H/16, W/16) for 1.0 at alpha 1
        return self.classifier(x).flatten(1)  # (B, num_classes)


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)  # 3x3/2; Caffe's pooling rounds up


def _check_options(
    base_e: int, incr_e: int, freq: int, pct_3x3: float, sr: float, bypass: str, dropout: float
) -> None:
    for name, value, low in (("base_e", base_e, 1), ("incr_e", incr_e, 0), ("freq", freq, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise EdgeCNNError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(pct_3x3, bool) or not isinstance(pct_3x3, (int, float)) or not 0 < pct_3x3 < 1:
        raise EdgeCNNError(f"pct_3x3 must be a fraction strictly between 0 and 1, got {pct_3x3!r}")
    if isinstance(sr, bool) or not isinstance(sr, (int, float)) or not 0 < sr <= 1:
        raise EdgeCNNError(f"sr (squeeze ratio) must be in (0, 1], got {sr!r}")
    if bypass not in BYPASSES:
        raise EdgeCNNError(f"bypass must be one of {', '.join(BYPASSES)}, got {bypass!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise EdgeCNNError(f"dropout must be in [0, 1), got {dropout!r}")


# Class scores are conv10 -> ReLU -> global average pooling, with no BatchNorm anywhere. With
# a zero bias half of a class's scores start negative; on small inputs the score map is 1x1
# (32 px: one value per image), and a class whose score is negative for every image gets no
# gradient and never recovers. Starting every score at +1 keeps all classes live while they
# learn; it changes no parameter or multiply-add. SqueezeNet 1.1 at 32 px on mnist5k (AdamW
# 2e-3, batch 64, 20 epochs): 97.6% with it, 11.6% (dead at epoch 1) with torchvision's 0.
CLASS_SCORE_BIAS = 1.0


def _init_weights(model: SqueezeNet) -> None:
    if is_meta(model):
        return
    # torchvision's scheme: Kaiming-uniform convs, a small normal init for conv10, zero biases,
    # except conv10's bias, which starts at CLASS_SCORE_BIAS (see there).
    final = model.classifier[1]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m is final:
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
            else:
                nn.init.kaiming_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, CLASS_SCORE_BIAS if m is final else 0.0)


@register_model(
    "squeezenet",
    family="squeezenet",
    aliases=("squeezenet1_0",),
    alpha=True,
    resolution=224,
    min_resolution=21,
    paper=PAPER,
)
def squeezenet(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
               **kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.0 [Iandola et al., arXiv:1602.07360, 2016]: 1,248,424 params, 818.9M MACs.

    kwargs: SqueezeNet's options, the Section 5 metaparameters base_e, incr_e, freq, pct_3x3
    and sr, bypass "none", "simple" or "complex" (Section 6), and dropout.
    """
    return SqueezeNet("1_0", alpha=alpha, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(
    "squeezenet1_1",
    family="squeezenet",
    alpha=True,
    resolution=224,
    min_resolution=17,
    paper=PAPER,
)
def squeezenet1_1(*, alpha: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                  **kwargs: Any) -> SqueezeNet:
    """SqueezeNet 1.1 [Iandola et al., arXiv:1602.07360, 2016; github.com/forresti/SqueezeNet].

    1,235,496 params, 349.2M MACs at 224 px: the 1.0 Fire modules behind a 3x3 conv1 of 64
    channels, with earlier pooling. Same options as `squeezenet`.
    """
    return SqueezeNet("1_1", alpha=alpha, num_classes=num_classes, in_chans=in_chans, **kwargs)
