"""The Inception module of GoogLeNet (Inception v1) and its auxiliary classifier.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842), Fig. 2(b)
and Section 5.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct, NormLayer

# torchvision's GoogLeNet (ported from TensorFlow) uses BN with eps 1e-3 after every conv.
InceptionNorm: NormLayer = partial(nn.BatchNorm2d, eps=1e-3)


class Inception(nn.Sequential):
    """Four parallel branches concatenated along channels (Fig. 2(b) of the paper).

    1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> "5x5" | 3x3/1 max pool -> 1x1 projection.
    (B, C, H, W) -> (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
    `kernel_5x5` is the kernel of the third branch: 5 in the paper. torchvision's GoogLeNet
    uses 3 there (pytorch/vision#906); the `googlenet` builder defaults to 3 to match it.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel_5x5: int = 5,
        norm_layer: NormLayer = InceptionNorm,
    ) -> None:
        if kernel_5x5 not in (3, 5):
            raise EdgeCNNError(f"kernel_5x5 must be 3 or 5, got {kernel_5x5!r}")
        conv = partial(ConvNormAct, norm_layer=norm_layer)
        super().__init__(
            conv(in_channels, ch1x1, 1),
            nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3)),
            nn.Sequential(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, kernel_5x5)),
            nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True),
                          conv(in_channels, pool_proj, 1)),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate map (Section 5 of the paper).

    Average pool to 4x4 (the paper's 5x5/3 pool at 224 px; adaptive here, as torchvision's,
    so it runs at any input) -> 1x1 conv to 128 -> FC 1024 + ReLU -> dropout 0.7 -> FC.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dropout: float = 0.7,
        norm_layer: NormLayer = InceptionNorm,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvNormAct(in_channels, 128, 1, norm_layer=norm_layer)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x)).flatten(1)  # (B, 2048)
        return self.fc2(self.dropout(self.act(self.fc1(x))))
