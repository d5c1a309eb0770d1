"""DenseNet-BC's dense layer, dense block and transition layer.

Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017 (arXiv:1608.06993), Section 3. Memory-efficient variant: Pleiss et al.,
"Memory-Efficient Implementation of DenseNets", arXiv:1707.06990 (2017).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from edgecnn.errors import EdgeCNNError


class DenseLayer(nn.Module):
    """H_l of DenseNet-B: BN-ReLU-Conv(1x1) bottleneck to bn_size*k, then BN-ReLU-Conv(3x3) to k.

    Takes the list of every earlier feature map of the block and returns the k new channels
    (the block concatenates them). With `memory_efficient`, the concatenation and the
    bottleneck (cat -> BN -> ReLU -> 1x1 conv) are recomputed in the backward pass instead of
    stored (torch.utils.checkpoint), in training mode only: the outputs and gradients are
    those of the normal path, and the BN running statistics are updated once, not again when
    the recomputation runs. Memory per block falls from quadratic to linear in its depth.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False)
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat(features, 1)  # (B, in_channels, H, W)
        return self.conv1(self.act1(self.norm1(x)))  # (B, bn_size * k, H, W)

    @contextlib.contextmanager
    def _recompute(self) -> Iterator[None]:
        # The recomputation runs norm1 again, in training mode: same batch statistics, so the
        # same output, but a second running-stat update, which is undone here.
        stats = [b.clone() for b in self.norm1.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, saved in zip(self.norm1.buffers(), stats):
                    buffer.copy_(saved)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.training and torch.is_grad_enabled():
            x = checkpoint(self._bottleneck, *features, use_reentrant=False,
                           context_fn=lambda: (contextlib.nullcontext(), self._recompute()))
        else:
            x = self._bottleneck(*features)
        return self.conv2(self.act2(self.norm2(x)))  # (B, k, H, W)


class DenseBlock(nn.ModuleList):
    """`num_layers` dense layers, each fed the concatenation of all maps before it.

    (B, C, H, W) -> (B, C + num_layers * k, H, W).
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, memory_efficient)
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-Conv(1x1) to floor(theta * C) channels, 2x2/2 avg pool.

    theta is DenseNet-C's compression factor, 0 < theta <= 1 (0.5 in DenseNet-BC).
    """

    def __init__(self, in_channels: int, compression: float = 0.5) -> None:
        if not 0.0 < compression <= 1.0:
            raise EdgeCNNError(f"compression must be in (0, 1], got {compression!r}")
        out = math.floor(compression * in_channels)
        if out < 1:
            raise EdgeCNNError(
                f"compression={compression} leaves no channels out of {in_channels}"
            )
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out, 1, bias=False),
            nn.AvgPool2d(2, 2),
        )
        self.out_channels = out
