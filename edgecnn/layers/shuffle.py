"""Channel shuffle and the ShuffleNet v2 unit.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018 (arXiv:1807.11164), Fig. 3c (basic unit) and 3d (downsampling unit), laid out as
torchvision's reference.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups: (B, g*n, H, W) -> (B, n*g, H, W).

    Channel i of group j moves to position i * groups + j, so that the next unit's split
    mixes channels from both branches (Zhang et al. 2018, Fig. 1).
    """
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w)  # (B, g, C/g, H, W)
    return x.transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleV2Block(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/s, W/s), two branches of C_out/2 channels each.

    stride 1 (Fig. 3c): the input is split in halves; one half passes untouched, the other
    goes 1x1 -> 3x3 depthwise -> 1x1. stride 2 (Fig. 3d): no split; both branches see the
    whole input, the left one as 3x3 depthwise /2 -> 1x1. Concatenate, then shuffle (g = 2).
    The depthwise convs have no activation (the paper's units, torchvision's reference).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise EdgeCNNError(f"ShuffleNet v2 unit stride must be 1 or 2, got {stride}")
        if out_channels % 2:
            raise EdgeCNNError(f"ShuffleNet v2 unit needs even output channels, got {out_channels}")
        if stride == 1 and in_channels != out_channels:
            raise EdgeCNNError(
                f"a stride-1 ShuffleNet v2 unit keeps its width: {in_channels} != {out_channels}"
            )
        self.stride = stride
        half = out_channels // 2
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvNormAct(in_channels, in_channels, 3, stride=2, groups=in_channels,
                            act_layer=None),
                ConvNormAct(in_channels, half, 1),
            )
        else:
            self.branch1 = nn.Identity()
        self.branch2 = nn.Sequential(
            ConvNormAct(in_channels if stride == 2 else half, half, 1),
            ConvNormAct(half, half, 3, stride=stride, groups=half, act_layer=None),
            ConvNormAct(half, half, 1),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)  # channel split: (B, C/2, H, W) each
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)
