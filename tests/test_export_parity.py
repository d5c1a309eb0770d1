"""Export's checks run on the runtime's own runners, fed the graphs' bytes: parity with
PyTorch, the batch probe, the fp16 check and the latency comparison (by the bench harness)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgecnn.export.onnx_io import batch_dynamic, to_onnx_proto
from edgecnn.export.parity import (check_parity, compare_latency, ort_runner, ort_session,
                                   parity_runners, runner_logits)


def small_net(flatten_by_reshape: bool = False) -> nn.Module:
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv(x)).mean((2, 3))
            # reshape(1, 8) fixes the batch inside the graph, as some user models do
            return self.fc(x.reshape(1, 8) if flatten_by_reshape else x)

    return Net().eval()


@pytest.fixture(scope="module")
def net_and_proto() -> tuple[nn.Module, onnx.ModelProto]:
    model = small_net()
    return model, to_onnx_proto(model, torch.zeros(1, 3, 12, 12))


def test_parity_passes_on_the_export_and_fails_on_a_changed_weight(net_and_proto) -> None:
    model, proto = net_and_proto
    x = np.random.default_rng(0).standard_normal((3, 3, 12, 12), dtype=np.float32)
    result = check_parity(model, proto, x, "random", parity_runners(proto))
    assert result.ok and result.images == 3
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    weight = next(t for t in broken.graph.initializer if len(t.dims) == 2)  # the fc weight
    values = onnx.numpy_helper.to_array(weight).copy()
    values[0, 0] += 0.05
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    bad = check_parity(model, broken, x, "random")
    assert not bad.ok and bad.onnxruntime_max_abs > 1e-3 and bad.openvino_max_abs > 1e-3


def test_batch_probe_frees_the_batch_unless_the_graph_fixes_it(net_and_proto) -> None:
    _, proto = net_and_proto
    free = batch_dynamic(proto)
    assert free is not None
    x = np.random.default_rng(1).standard_normal((5, 3, 12, 12), dtype=np.float32)
    with ort_runner(free) as batched, ort_runner(proto) as single:
        assert batched.input.shape[0] is None and single.input.shape[0] == 1
        np.testing.assert_allclose(runner_logits(batched, x), runner_logits(single, x),
                                   atol=1e-5)
    fixed = small_net(flatten_by_reshape=True)
    assert batch_dynamic(to_onnx_proto(fixed, torch.zeros(1, 3, 12, 12))) is None


def test_ort_session_is_the_runners_session(net_and_proto) -> None:
    """guard.py and quantize.py use ONNX Runtime's own API on the runner's session."""
    _, proto = net_and_proto
    session = ort_session(proto, threads=0, spinning=False)
    x = np.zeros((1, 3, 12, 12), np.float32)
    assert session.get_inputs()[0].name == "input"
    np.testing.assert_allclose(session.run(None, {"input": x})[0],
                               ort_runner(proto).infer(x), atol=1e-6)


def test_latency_comparison_times_every_variant_with_the_harness(net_and_proto) -> None:
    _, proto = net_and_proto
    ms = compare_latency({"a": proto, "b": proto.SerializeToString()}, 12, 3, blocks=2,
                         runs=3)
    assert set(ms) == {"a", "b"} and all(np.isfinite(v) and v > 0 for v in ms.values())
    shaped = compare_latency({"a": proto}, 0, 0, blocks=1, runs=2, input_shape=(3, 12, 12))
    assert set(shaped) == {"a"}
