"""Building blocks reused across the zoo's families (layers -> models, never the reverse)."""

from edgecnn.layers.conv import (
    ConvNormAct,
    ConvTransposeNormAct,
    DepthwiseSeparable,
    SqueezeExcitation,
    make_divisible,
    scale_channels,
)
from edgecnn.layers.dense import DenseBlock, DenseLayer, Transition
from edgecnn.layers.fire import Fire
from edgecnn.layers.inception import Inception, InceptionAux
from edgecnn.layers.inverted_residual import InvertedResidual
from edgecnn.layers.residual import (
    BasicBlock,
    Bottleneck,
    DropPath,
    PreActBasicBlock,
    PreActBottleneck,
    survival_probs,
)
from edgecnn.layers.shuffle import ShuffleV2Block, channel_shuffle
from edgecnn.layers.sqnxt import SqNxtBlock

__all__ = [
    "BasicBlock", "Bottleneck", "ConvNormAct", "ConvTransposeNormAct", "DenseBlock",
    "DenseLayer", "DepthwiseSeparable", "DropPath", "Fire", "Inception", "InceptionAux",
    "InvertedResidual", "PreActBasicBlock", "PreActBottleneck", "ShuffleV2Block", "SqNxtBlock",
    "SqueezeExcitation", "Transition", "channel_shuffle", "make_divisible", "scale_channels",
    "survival_probs",
]
