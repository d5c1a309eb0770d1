"""Adaptive average pooling at sizes ONNX has no operator for, as ops every opset has.

AlexNet and VGG end in an adaptive average pool to 6x6 / 7x7 (the identity at 224 px). At
another resolution the input side is not a multiple of the output side (VGG at 32 px pools
1x1 to 7x7, AlexNet at 63 px 1x1 to 6x6), so the bins overlap or differ in size: no
AveragePool (one kernel, one stride) computes it, and the TorchScript exporter refuses it
below opset 18. The dynamo exporter would take it (opset >= 18 only, and 4-8 s where the
TorchScript one takes 0.6), but the target recipes pin opsets below 18 (TensorRT 8.2 on the
Jetson Nano reads 13 at most), so
instead, while the model is exported, each such pool computes the same bins with plain ops:
PyTorch's bin i of an axis of n values pooled to m is [floor(i n / m), ceil((i + 1) n / m)),
and an average over a rectangle of bins is the average over rows of the average over columns
(every row of a bin has as many columns), so per axis:
- every bin one value wide (upsampling, e.g. 1 -> 7): one Gather of those indices;
- otherwise one Slice + ReduceMean per bin, then one Concat.
Slice, ReduceMean, Gather and Concat exist in every opset the recipes allow (>= 11). The
result equals PyTorch's up to fp32 summation order (measured by the parity check of every
export). Pools whose sides divide exactly keep PyTorch's own op (GlobalAveragePool or
AveragePool).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def exportable_pools(model: nn.Module) -> Iterator[None]:
    """While inside, every nn.AdaptiveAvgPool2d of `model` runs `adaptive_avg_pool2d`."""
    pools = [m for m in model.modules()
             if isinstance(m, nn.AdaptiveAvgPool2d) and "forward" not in vars(m)]
    for m in pools:  # an instance attribute: the class and other models stay untouched
        m.forward = lambda x, size=m.output_size: adaptive_avg_pool2d(x, size)
    try:
        yield
    finally:
        for m in pools:
            del m.forward


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int | tuple[int | None, int | None]
                        ) -> torch.Tensor:
    """F.adaptive_avg_pool2d(x, output_size), exportable at any static input size."""
    sizes = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    ins = (int(x.shape[-2]), int(x.shape[-1]))
    outs = tuple(n if m is None else int(m) for n, m in zip(ins, sizes))
    if all(n % m == 0 for n, m in zip(ins, outs)):  # one kernel and stride: ONNX's own op
        return F.adaptive_avg_pool2d(x, outs)
    for axis, n, m in zip((-2, -1), ins, outs):
        x = _pool_axis(x, axis, n, m)
    return x


def _pool_axis(x: torch.Tensor, axis: int, n: int, m: int) -> torch.Tensor:
    bins = [(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]  # [start, end)
    if n == m:
        return x
    if all(end - start == 1 for start, end in bins):
        return x.index_select(axis, torch.tensor([start for start, _ in bins]))
    return torch.cat([x.narrow(axis, start, end - start).mean(axis, keepdim=True)
                      for start, end in bins], dim=axis)
