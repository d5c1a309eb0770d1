"""The inverted residual (MBConv) block of MobileNet v2 and v3.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, Fig. 3b
and Table 1: 1x1 expansion -> kxk depthwise -> 1x1 *linear* projection, with an identity
shortcut between the thin ends when shapes allow. Howard et al., "Searching for MobileNetV3",
ICCV 2019, Fig. 4 adds squeeze-and-excitation after the depthwise conv, 5x5 kernels and
hard-swish. Both follow torchvision's references layer for layer.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import (
    ActLayer,
    ConvNormAct,
    NormLayer,
    SqueezeExcitation,
    make_divisible,
)


class InvertedResidual(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H/s, W/s): expand, depthwise, (SE), linear projection.

    expanded_channels == in_channels leaves the 1x1 expansion out (v2's t = 1 blocks, v3's
    first block). se_reduction > 0 adds SE on the expanded features with
    make_divisible(expanded // se_reduction, 8) squeeze channels (v3 uses 4), a ReLU inside
    and `se_gate` as the gate. dilation > 1 replaces the stride (torchvision's `dilated` tail:
    resolution kept, receptive field grown); the shortcut still follows the nominal stride.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expanded_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act_layer: ActLayer = nn.ReLU6,
        se_reduction: int = 0,
        se_gate: ActLayer = nn.Hardsigmoid,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise EdgeCNNError(f"inverted residual stride must be 1 or 2, got {stride}")
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expanded_channels != in_channels:
            layers.append(ConvNormAct(in_channels, expanded_channels, 1,
                                      norm_layer=norm_layer, act_layer=act_layer))
        layers.append(ConvNormAct(expanded_channels, expanded_channels, kernel_size,
                                  stride=1 if dilation > 1 else stride, dilation=dilation,
                                  groups=expanded_channels, norm_layer=norm_layer,
                                  act_layer=act_layer))
        if se_reduction:
            squeeze = make_divisible(expanded_channels // se_reduction, 8)
            layers.append(SqueezeExcitation(expanded_channels, squeeze, act_layer=nn.ReLU,
                                            gate_layer=se_gate))
        # Linear bottleneck: no activation after the projection (Sec. 3.2 of the v2 paper).
        layers.append(ConvNormAct(expanded_channels, out_channels, 1,
                                  norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out
