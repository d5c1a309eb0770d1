"""The SqueezeNext block.

Gholami et al., "SqueezeNext: Hardware-Aware Neural Network Design", CVPR Workshops 2018,
arXiv:1803.10615, Fig. 1 (right) and Fig. 2. Channel counts, groups and activations follow
the authors' Caffe prototxts (github.com/amirgholami/SqueezeNext): every conv is followed by
BN and ReLU, the projection shortcut included, and the sum is followed by a ReLU.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct, scale_channels


class SqNxtBlock(nn.Module):
    """Two-stage 1x1 squeeze, separable 3x1 / 1x3 convs, 1x1 expansion, plus a bypass.

    (B, in, H, W) -> (B, out, H/stride, W/stride), the main path being
      1x1 in -> out/2 (stride), 1x1 out/2 -> out/4, 3x1 out/4 -> out/2, 1x3 out/2 -> out/2,
      1x1 out/2 -> out.
    The squeeze widths are fractions of the block's *output*, whatever its input: in the
    prototxts the first block of the network squeezes 64 -> 16 (1/4 of its input) and the
    first block of a later stage 32 -> 32 (all of it) on its way to 64.
    groups: the grouped G-SqueezeNext variant: the first 1x1 squeeze and both separable
    convs are grouped (the 1.0-G-SqNxt-23 prototxt uses 2); the second squeeze, the
    expansion and the shortcut are not.
    transposed: the 1x3 conv comes first. The paper alternates the order block after block.
    projection: a 1x1 conv (+ BN + ReLU) shortcut, with the block's stride. The prototxts use
    one in the first block of every stage, even where the shapes would allow the identity
    (stage 1 of 2.0-SqNxt-23 goes 64 -> 64); it is required when the shapes change.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        transposed: bool = False,
        projection: bool | None = None,
    ) -> None:
        super().__init__()
        half = scale_channels(out_channels, 0.5)  # first squeeze and separable convs
        quarter = scale_channels(out_channels, 0.25)  # second squeeze
        sep = [((3, 1), quarter, half), ((1, 3), half, half)]  # (kernel, in, out)
        if transposed:
            sep = [((1, 3), quarter, half), ((3, 1), half, half)]
        self.body = nn.Sequential(
            ConvNormAct(in_channels, half, 1, stride=stride, groups=groups),
            ConvNormAct(half, quarter, 1),
            *[ConvNormAct(cin, cout, k, groups=groups) for k, cin, cout in sep],
            ConvNormAct(half, out_channels, 1),
        )
        reshapes = stride != 1 or in_channels != out_channels
        if projection is None:
            projection = reshapes
        elif not projection and reshapes:
            raise EdgeCNNError(
                f"an identity shortcut cannot go {in_channels}->{out_channels} at stride {stride}"
            )
        self.shortcut: nn.Module = (
            ConvNormAct(in_channels, out_channels, 1, stride=stride) if projection
            else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (B, out, H/s, W/s)
