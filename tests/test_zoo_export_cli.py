"""`edgecnn export NAME` for one model per zoo family, the way a user runs it.

The path under test is the CLI's own (`edgecnn.cli.main.main`, in-process: no interpreter
start per case): zoo model with initialized weights, ONNX export at the target's opset,
onnxslim, BatchNorm folding (export/bnfold.py), adaptive pools (export/pools.py), parity,
files. Each artifact's fp32 file is then run by the torch-free runtime
(`edgecnn.runtime.load`) and compared with the PyTorch model the export started from.
Smallest documented input, raised to 32 px; AlexNet and VGG still carry 0.24-0.5 GB of
classifier weights at any input size (their exports take 30-70 s on 2 cores): marked slow.
benchmarks/zoo/export_all.py runs all 44 models this way, at both sizes, fp32 and int8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import edgecnn
from edgecnn.cli.main import main
from edgecnn.export.source import resolve_source
from edgecnn.export.spec import ZooSource

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

SLOW = pytest.mark.slow
# (model, --alpha or None): one per family; width 0.25 where the paper defines a multiplier
FAMILIES = [
    ("lenet5", None),
    pytest.param("alexnet", None, marks=SLOW),
    pytest.param("vgg11_bn", None, marks=SLOW),  # BN folded into each conv
    ("googlenet", None),
    ("resnet18", None),
    ("preact_resnet18", None),
    ("resnext50_32x4d", None),
    ("se_resnet50", None),
    ("densenet121", None),
    ("squeezenet1_1", None),
    ("squeezenext23", None),
    ("mobilenet", 0.25),
    ("mobilenet_v2", 0.25),
    ("mobilenet_v3_small", 0.25),
    ("shufflenet_v2_x0_5", None),
]


def min_resolution(name: str) -> int:
    return max(edgecnn.get_spec(name).min_resolution, 32)


def export(name: str, out: Path, *extra: str) -> int:
    return main(["export", name, "--resolution", str(min_resolution(name)),
                 "--num-classes", "10", "-o", str(out), *extra])


@pytest.mark.parametrize(("name", "alpha"), FAMILIES)
def test_cli_export_matches_pytorch(name: str, alpha: float | None, tmp_path: Path) -> None:
    from edgecnn.runtime import load

    out = tmp_path / name
    extra = ["--alpha", str(alpha)] if alpha else []
    assert export(name, out, *extra) == 0
    assert (out / "model.onnx").is_file() and (out / "export.json").is_file()
    res = min_resolution(name)
    # the model the CLI exported: same name, size, classes and seed (0, the CLI's default)
    model = resolve_source(ZooSource(name, alpha=alpha, resolution=res, num_classes=10)).model
    x = np.random.default_rng(1).standard_normal((2, model.config["in_chans"], res, res),
                                                 dtype=np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    from edgecnn.export.parity import check_parity, openvino_runner

    with load(out, runtime="onnxruntime", device="cpu") as artifact:
        got = np.concatenate([artifact.infer(x[i:i + 1]) for i in range(len(x))])
        assert got.shape == expected.shape == (2, 10)
        assert np.abs(expected).max() > 1e-3, "logits vanish: the comparison would be vacuous"
        # the file written, judged by the export's own portable rule (export/parity.py: error
        # against float64 within a multiple of fp32's own rounding, on any CPU), in the
        # runner a device app gets and in OpenVINO, both reading the file (VGG's is 0.5 GB)
        ov = openvino_runner(out / "model.onnx")
        try:
            assert check_parity(model, out / "model.onnx", x, "random",
                                consumers=(artifact.runner, ov)).ok
        finally:
            ov.deactivate()


def test_int8_export_of_a_bn_before_conv_family(tmp_path: Path) -> None:
    """Pre-activation ResNet: its BNs (after the residual sums) become Mul + Add in fp32;
    int8 holds int8 convolutions (or, when no block is worth int8, says so and writes no
    file)."""
    out = tmp_path / "preact"
    assert export("preact_resnet18", out, "--int8", "--calib-data", "random") == 0
    fp32 = onnx.load(str(out / "model.onnx"))
    ops = [n.op_type for n in fp32.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Mul") == 8  # 7 units' + final BN
    int8_path = out / "model.int8.onnx"
    report = json.loads((out / "export.json").read_text())
    if not int8_path.exists():
        assert report["int8"]["written"] is False
        return
    nodes = onnx.load(str(int8_path)).graph.node
    ops = [n.op_type for n in nodes]
    if "QLinearConv" in ops:
        return
    producers = {o: n for n in nodes for o in n.output}
    dq_convs = [n for n in nodes if n.op_type == "Conv"
                and all(producers.get(t) is not None
                        and producers[t].op_type == "DequantizeLinear" for t in n.input[:2])]
    assert dq_convs, f"no int8 convolution in model.int8.onnx: {sorted(set(ops))}"
