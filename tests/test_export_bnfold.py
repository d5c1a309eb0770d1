"""BatchNorm before a convolution (export/bnfold.py: folded where exact, else Mul + Add) and adaptive pools at non-factor sizes
(export/pools.py), on small modules, against PyTorch in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.export.bnfold import fold_batchnorms
from edgecnn.export.onnx_io import simplify, to_onnx_proto
from edgecnn.export.pools import adaptive_avg_pool2d

pytest.importorskip("onnxruntime")


class BNThenConv(nn.Module):
    """conv -> +1 (so no conv precedes the BN) -> BN [-> ReLU] -> two convs reading it."""

    def __init__(self, padding: int, groups: int, relu: bool, zero_shift: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = relu
        self.a = nn.Conv2d(8, 8, 3, padding=padding, groups=groups)
        self.b = nn.Conv2d(8, 6, 1, bias=False)
        with torch.no_grad():  # statistics far from the identity, so folding shows
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            if zero_shift:  # t = beta - mean * s = 0
                self.bn.bias.zero_()
            else:
                self.bn.bias.uniform_(-1, 1)
                self.bn.running_mean.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.stem(x) + 1.0)
        y = torch.relu(y) if self.relu else y
        return torch.cat([self.a(y).flatten(1), self.b(y).flatten(1)], 1)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from edgecnn.export.parity import ort_runner

    onnx.checker.check_model(proto, full_check=True)
    return ort_runner(proto).infer(x)


@pytest.mark.parametrize(("padding", "groups", "relu", "zero_shift", "folded"), [
    (0, 1, False, False, True),    # BN -> conv, no padding: exact
    (0, 2, False, False, True),    # grouped
    (0, 8, False, False, True),    # depthwise
    (1, 1, False, True, True),     # padded, but the shift is zero: the pad is still zero
    (1, 1, False, False, False),   # padded with a shift: the border would differ
    (0, 1, True, False, False),    # BN -> ReLU -> conv: a nonlinearity in between
])
def test_bn_folds_into_the_following_conv_only_where_exact(
        padding: int, groups: int, relu: bool, zero_shift: bool, folded: bool) -> None:
    torch.manual_seed(0)
    model = BNThenConv(padding, groups, relu, zero_shift).eval()
    x = torch.randn(2, 4, 9, 9)
    proto, report = fold_batchnorms(simplify(to_onnx_proto(model, x[:1], dynamic_batch=True)))
    ops = [n.op_type for n in proto.graph.node]
    assert "BatchNormalization" not in ops and report.kept == 0
    # folded: nothing left between the stem's Add and the convs; else one Mul + Add pair
    assert (report.folded, report.mul_add, ops.count("Mul")) == \
        ((1, 0, 0) if folded else (0, 1, 1))
    with torch.no_grad():
        expected = model(x).numpy()
    got = _run(proto, x.numpy())
    assert np.abs(got - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max()))


@pytest.mark.parametrize(("side", "out"), [(1, 7), (2, 7), (5, 7), (13, 6), (9, 6), (12, 6),
                                           (3, (7, None))])
def test_adaptive_pool_formulation_equals_pytorch(side: int, out: int | tuple) -> None:
    x = torch.randn(2, 3, side, side + 1)
    assert torch.allclose(adaptive_avg_pool2d(x, out), F.adaptive_avg_pool2d(x, out),
                          rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_adaptive_pool_exports_at_low_opsets(opset: int) -> None:
    """VGG's 7x7 pool of a 1x1 map (32 px) and AlexNet's 6x6 of 3x3: the TorchScript
    exporter refuses both below opset 18 without export/pools.py."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                          nn.Linear(4 * 49, 5)).eval()
    for side in (3, 5, 9):
        x = torch.randn(1, 3, side, side)
        proto = to_onnx_proto(model, x, opset=opset)
        with torch.no_grad():
            expected = model(x).numpy()
        assert np.abs(_run(proto, x.numpy()) - expected).max() <= 1e-5
    assert "forward" not in vars(model[1]), "the pool's own forward is back after export"
