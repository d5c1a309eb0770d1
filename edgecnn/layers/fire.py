"""The Fire module of SqueezeNet, with the paper's optional bypass connections.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
model size", arXiv:1602.07360 (2016), Section 3.2 (Fire module) and Section 6 (bypass).
As in the paper's Caffe model and torchvision there is no batch norm: every conv carries
a bias and is followed by a ReLU.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct

FireBypass = Literal["none", "identity", "conv"]


class Fire(nn.Module):
    """squeeze 1x1 -> ReLU -> [expand 1x1 | expand 3x3] -> ReLU -> concat (-> + bypass).

    (B, in, H, W) -> (B, expand1x1 + expand3x3, H, W).
    bypass: "none"; "identity" (the paper's simple bypass: needs in == out channels);
    "conv" (the paper's complex bypass: a 1x1 conv with bias, no activation, Fig. 2 right).
    The bypass is added to the module's output after its ReLU, as in SqueezeNet-Residual.
    """

    def __init__(
        self,
        in_channels: int,
        squeeze: int,
        expand1x1: int,
        expand3x3: int,
        bypass: FireBypass = "none",
    ) -> None:
        super().__init__()
        out_channels = expand1x1 + expand3x3
        self.squeeze = ConvNormAct(in_channels, squeeze, 1, norm_layer=None)
        self.expand1x1 = ConvNormAct(squeeze, expand1x1, 1, norm_layer=None)
        self.expand3x3 = ConvNormAct(squeeze, expand3x3, 3, norm_layer=None)
        if bypass == "identity":
            if in_channels != out_channels:
                raise EdgeCNNError(
                    f"an identity bypass needs equal channels, got {in_channels}->{out_channels}"
                )
            self.bypass: nn.Module | None = nn.Identity()
        elif bypass == "conv":
            self.bypass = nn.Conv2d(in_channels, out_channels, 1)  # with bias, like the paper
        elif bypass == "none":
            self.bypass = None
        else:
            raise EdgeCNNError(f"Fire bypass must be none, identity or conv, got {bypass!r}")
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze(x)  # (B, squeeze, H, W)
        out = torch.cat([self.expand1x1(s), self.expand3x3(s)], dim=1)  # (B, e1 + e3, H, W)
        if self.bypass is not None:
            out = out + self.bypass(x)
        return out
