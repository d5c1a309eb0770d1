"""Building blocks reused across the zoo's families (layers -> models, never the reverse)."""

from edgecnn.layers.conv import (
    ConvNormAct,
    ConvTransposeNormAct,
    DepthwiseSeparable,
    SqueezeExcitation,
    make_divisible,
    scale_channels,
)

__all__ = [
    "ConvNormAct",
    "ConvTransposeNormAct",
    "DepthwiseSeparable",
    "SqueezeExcitation",
    "make_divisible",
    "scale_channels",
]
