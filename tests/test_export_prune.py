"""Pruning before export: structured (torch-pruning's dependency graph) and unstructured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import torch
from torch import nn

from edgecnn.export.prune import count_macs, prune
from edgecnn.export.spec import CheckpointSource, ExportSpec, Int8Spec, PruneSpec, ZooSource
from edgecnn.registry import create_model
from tests.export_helpers import lenet_ckpt, mobilenet_ckpt  # noqa: F401  (fixtures)

pytest.importorskip("onnxruntime")

# depthwise convs, Fire concatenations, SqueezeNext blocks, inverted residual additions
FAMILIES = [("mobilenet", 0.5), ("squeezenet1_1", 1.0), ("squeezenext23", 1.0),
            ("mobilenet_v2", 0.5)]


@pytest.mark.parametrize("name,alpha", FAMILIES)
def test_structured_pruning_keeps_every_coupling_consistent(name: str, alpha: float) -> None:
    from edgecnn.export.onnx_io import to_onnx_proto
    from edgecnn.export.parity import ort_session
    from edgecnn.export.source import init_bn_stats

    torch.manual_seed(0)
    model = create_model(name, alpha=alpha, num_classes=10)
    x = torch.randn(8, 3, 32, 32)
    init_bn_stats(model, x)
    widths = {k: m.out_channels for k, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    report = prune(model, PruneSpec(0.4), resolution=32, in_chans=3)
    assert report.macs_removed >= 0.4 and report.macs_after == count_macs(model, x)
    assert report.params_after < report.params_before and report.channels
    for layer, (before, after) in report.channels.items():
        assert after < before == widths[layer]
        assert after % 8 == 0 or after == before, f"{layer}: {after} channels"
    with torch.no_grad():
        y = model(x)
    assert y.shape == (8, 10) and torch.isfinite(y).all()
    # the pruned graph exports and ONNX Runtime agrees with PyTorch on it
    got = ort_session(to_onnx_proto(model, x[:1])).run(None, {"input": x[:1].numpy()})[0]
    np.testing.assert_allclose(got, y[:1].numpy(), atol=1e-4 * max(1, float(y.abs().max())))


def test_global_and_uniform_scopes_prune_differently() -> None:
    results = {}
    for scope in ("uniform", "global"):
        torch.manual_seed(0)
        model = create_model("mobilenet", alpha=0.5, num_classes=10)
        report = prune(model, PruneSpec(0.5, scope=scope), resolution=32, in_chans=3)
        assert report.macs_removed >= 0.5
        results[scope] = report.channels
    assert results["uniform"] != results["global"]


def test_structured_ratio_out_of_reach_is_a_clear_error() -> None:
    from edgecnn.errors import EdgeCNNError

    model = create_model("lenet5")  # 6 and 16 channels: little to take in steps of 8
    with pytest.raises(EdgeCNNError, match="could not remove 90%"):
        prune(model, PruneSpec(0.9), resolution=32, in_chans=1)


def test_unstructured_pruning_shrinks_the_compressed_artifact(tmp_path: Path) -> None:
    from edgecnn.export import export

    source = ZooSource("squeezenet1_1", resolution=32, num_classes=10)
    dense = export(ExportSpec(source, output=str(tmp_path / "dense"))).report
    sparse = export(ExportSpec(source, prune=PruneSpec(0.8, method="unstructured"),
                               int8=Int8Spec("random", calib_samples=4),
                               output=str(tmp_path / "sparse"))).report
    pr = sparse["pruning"]
    assert pr["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert pr["macs_after"] == pr["macs_before"] and pr["params_after"] == pr["params_before"]
    assert pr["nonzero_params_after"] < 0.3 * pr["params_before"]
    d, s = dense["files"]["model.onnx"], sparse["files"]["model.onnx"]
    assert s["bytes"] == pytest.approx(d["bytes"], rel=0.01)  # same dense tensors
    assert s["zstd_bytes"] < 0.5 * d["zstd_bytes"] and s["gzip_bytes"] < 0.5 * d["gzip_bytes"]
    q = sparse["files"]["model.int8.onnx"]
    assert q["zstd_bytes"] < 0.5 * s["zstd_bytes"]  # 8-bit on top: the Deep Compression stack
    # the zeros survived BN folding, export and quantization
    proto = onnx.load(str(tmp_path / "sparse" / "model.onnx"))
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer
               if len(t.dims) == 4]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros >= 0.79


def test_structured_prune_and_finetune_from_checkpoint(tmp_path: Path, capsys,
                                                       mobilenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.cli.main import main

    out = tmp_path / "p"
    code = main(["export", str(mobilenet_ckpt), "--prune", "0.5", "--finetune-epochs", "1",
                 "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((out / "export.json").read_text())
    pr = report["pruning"]
    assert pr["method"] == "structured" and pr["finetune_epochs"] == 1
    assert pr["macs_after"] <= 0.5 * pr["macs_before"]
    assert report["macs"] == {"before": pr["macs_before"], "after": pr["macs_after"]}
    for key in ("top1_before", "top1_pruned", "top1_after"):
        assert 0 <= pr[key] <= 100
    assert pr["accuracy_data"] == "digits"
    lat = report["latency_ms"]
    assert lat["unpruned"] > 0 and lat["pruned"] > 0
    assert lat["speedup"] == pytest.approx(lat["unpruned"] / lat["pruned"], rel=0.01)
    assert all(p["ok"] for p in report["parity"])  # the pruned model, checked as any other
    assert "pruned:" in captured.out


def test_unstructured_finetune_keeps_the_zeros(tmp_path: Path,
                                               lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.export import export

    res = export(ExportSpec(CheckpointSource(str(lenet_ckpt)),
                            prune=PruneSpec(0.5, method="unstructured", finetune_epochs=1),
                            output=str(tmp_path / "u")))
    pr = res.report["pruning"]
    assert pr["sparsity"] >= 0.5
    proto = onnx.load(str(res.path / "model.onnx"))
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer
               if len(t.dims) >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros >= 0.49
    assert pr["top1_after"] is not None and pr["top1_after"] > 50  # still a digit classifier
