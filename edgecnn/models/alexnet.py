"""AlexNet, in the single-tower form of torchvision's reference.

Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012, Section 3 and Fig. 2.

The default is torchvision's `alexnet` exactly (61,100,840 params, 714M MACs at 224 px). That
network follows Krizhevsky's later "One weird trick" (arXiv:1404.5997) single-GPU variant:
64-192-384-256-256 channels without the paper's two-GPU grouping (96-256-384-384-256), no
local response normalisation and an adaptive 6x6 average pool before the classifier. The
options put the paper's choices back:
- `lrn=True`: local response normalisation after the ReLU of conv1 and conv2, before their
  pooling (Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75). No parameters.
- `overlapping_pool=False`: 2x2/2 pooling instead of the paper's overlapping 3x3/2
  (Section 3.4). Both give the same shapes at 224 px (55-27-13-6).

The adaptive pool makes the classifier see 6x6 at any input. The smallest input is 63 px: the
third pool needs a 3x3 map, which conv1's 11x11/4 and two 3x3/2 pools only leave from 63 up.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct
from edgecnn.registry import register_model

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0  # Section 3.3 of the paper


class ConvLayer(NamedTuple):
    channels: int
    kernel: int
    stride: int
    padding: int
    lrn: bool  # response normalisation follows (when lrn=True)
    pool: bool  # max pooling follows


# torchvision's single-tower AlexNet; the paper's tower pairs sum to 96, 256, 384, 384, 256.
#           c,   k, s, p, lrn,   pool
_CONVS = (
    ConvLayer(64, 11, 4, 2, True, True),
    ConvLayer(192, 5, 1, 2, True, True),
    ConvLayer(384, 3, 1, 1, False, False),
    ConvLayer(256, 3, 1, 1, False, False),
    ConvLayer(256, 3, 1, 1, False, True),
)
_POOL_SIDE = 6  # conv5's output side at 224 px: the classifier's input is (256, 6, 6)
_HIDDEN = 4096


class AlexNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        lrn: bool = False,
        overlapping_pool: bool = True,
    ) -> None:
        super().__init__()
        for label, value in (("lrn", lrn), ("overlapping_pool", overlapping_pool)):
            if not isinstance(value, bool):
                raise EdgeCNNError(f"alexnet: {label} must be True or False, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise EdgeCNNError(f"alexnet: dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        channels = in_chans
        for conv in _CONVS:
            layers.append(ConvNormAct(channels, conv.channels, conv.kernel, conv.stride,
                                      conv.padding, norm_layer=None))
            if lrn and conv.lrn:
                layers.append(paper_lrn())
            if conv.pool:
                # Overlapping: windows of 3 every 2 pixels (Section 3.4); otherwise tiled 2x2.
                layers.append(nn.MaxPool2d(3, 2) if overlapping_pool else nn.MaxPool2d(2, 2))
            channels = conv.channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(_POOL_SIDE)  # identity at 224 px
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(channels * _POOL_SIDE**2, _HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(_HIDDEN, _HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(_HIDDEN, num_classes),
        )
        # PyTorch's default initialisation, as torchvision's (the paper's N(0, 0.01) weights
        # and unit biases in some layers belong to its own training recipe).

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.features(x))  # (B, 256, 6, 6)
        return self.classifier(x.flatten(1))  # (B, 9216) -> (B, num_classes)


def paper_lrn() -> nn.LocalResponseNorm:
    """The paper's response normalisation b = a / (k + alpha * sum_{n maps} a^2)^beta.

    torch divides alpha by the window size n, so the paper's alpha is passed times n.
    """
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


@register_model(
    "alexnet",
    family="alexnet",
    paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural "
    "Networks, NeurIPS (2012)",
    min_resolution=63,
)
def alexnet(*, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5,
            lrn: bool = False, overlapping_pool: bool = True) -> AlexNet:
    """AlexNet [Krizhevsky et al., NeurIPS 2012], torchvision's variant by default.

    61,100,840 params and 714M MACs at 224 px. `lrn=True` adds the paper's local response
    normalisation after conv1 and conv2; `overlapping_pool=False` swaps the paper's 3x3/2
    max pools for 2x2/2 ones. Dropout 0.5 in the first two fully connected layers.
    """
    return AlexNet(num_classes=num_classes, in_chans=in_chans, dropout=dropout, lrn=lrn,
                   overlapping_pool=overlapping_pool)
