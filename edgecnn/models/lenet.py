"""LeNet-5, the convolutional network of the MNIST era.

LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
Recognition", Proceedings of the IEEE 86(11), 1998, Section II.B and Fig. 2.

This is the common modern reading of the paper's network (61,706 params), which differs from
the paper in three places:
- C3 is a dense 6->16 convolution. The paper connects each C3 map to only 3, 4 or 6 of the
  S2 maps (Table I), for 1,516 params instead of 2,416.
- S2 and S4 are plain 2x2 average pools. The paper's subsampling maps also have a trainable
  coefficient and bias each (12 and 32 params).
- The squashing function is plain tanh and the output is a linear layer of 10 units. The paper
  uses the scaled tanh 1.7159 * tanh(2a/3) and Euclidean RBF output units with fixed weights.

Shapes at the paper's 32x32 input: C1 (6, 28, 28), S2 (6, 14, 14), C3 (16, 10, 10),
S4 (16, 5, 5), C5 (120, 1, 1), F6 84, output 10. An adaptive average pool to 5x5 sits before
C5. At 32 px it is the identity, so the shapes and the 416,520 MACs are exactly the paper's.
At other sizes it lets C5 see a 5x5 map. MNIST's raw 28x28 digits give a 4x4 map after S4,
which the pool spreads to 5x5 by averaging overlapping windows. Declared minimum: 28, the raw
MNIST size. Smaller inputs (down to 16) would run too, but only by stretching a 1x1 or 2x2
map into C5's 5x5 window, which means nothing.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.registry import register_model
from edgecnn.layers.init import is_meta

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


class ConvLayer(NamedTuple):
    channels: int  # feature maps
    kernel: int  # valid (unpadded) square convolution
    pool: bool  # a 2x2 average subsampling follows it


# Fig. 2 of the paper. C5 is a 5x5 convolution over a 5x5 map, i.e. fully connected.
#           c, k, pool
_CONVS = (
    ConvLayer(6, 5, True),  # C1 + S2
    ConvLayer(16, 5, True),  # C3 + S4 (dense C3, see the module docstring)
)
_C5, _F6 = 120, 84
_C5_INPUT = 5  # side of the map C5 is designed to see (S4's output at 32 px)


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_chans
        for conv in _CONVS:
            layers += [nn.Conv2d(channels, conv.channels, conv.kernel), nn.Tanh()]
            if conv.pool:
                layers.append(nn.AvgPool2d(2, 2))
            channels = conv.channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(_C5_INPUT)  # identity at 32 px
        self.c5 = nn.Sequential(nn.Conv2d(channels, _C5, _C5_INPUT), nn.Tanh())
        self.f6 = nn.Sequential(nn.Linear(_C5, _F6), nn.Tanh())
        self.classifier = nn.Linear(_F6, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))  # (B, 16, 5, 5)
        x = self.c5(x).flatten(1)  # (B, 120)
        return self.classifier(self.f6(x))


def _init_weights(model: nn.Module) -> None:
    if is_meta(model):  # shapes only (profiling)
        return
    # LeCun normal, std 1/sqrt(fan_in) (LeCun et al., "Efficient BackProp", 1998): weighted
    # sums keep the scale of their inputs. The paper's Appendix A draws uniformly in
    # +-2.4/fan_in, tuned for its scaled tanh and sparse C3; with plain tanh that shrinks the
    # signal ~4x a layer, leaving untrained logits near 1e-5.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, m.weight[0].numel() ** -0.5)
            nn.init.zeros_(m.bias)


@register_model(
    "lenet5",
    family="lenet",
    paper="LeCun et al., Gradient-Based Learning Applied to Document Recognition, "
    "Proceedings of the IEEE 86(11) (1998)",
    resolution=32,
    min_resolution=28,
    num_classes=10,
    in_chans=1,
    mean=MNIST_MEAN,
    std=MNIST_STD,
)
def lenet5(*, num_classes: int = 10, in_chans: int = 1) -> LeNet5:
    """LeNet-5 [LeCun et al., Proc. IEEE 1998] with dense C3, tanh and average pooling.

    61,706 params and 416,520 MACs at 32x32 (1 channel, 10 classes); LeCun normal
    initialisation (see `_init_weights`).
    """
    return LeNet5(num_classes=num_classes, in_chans=in_chans)
