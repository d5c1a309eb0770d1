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
from tests.export_helpers import CostTimer, lenet_ckpt, mobilenet_ckpt  # noqa: F401

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
                               int8=Int8Spec("random", calib_samples=4,  # costs counted
                                             timer=CostTimer(0.5)),
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
    # int8 weights are symmetric (zero point 0): every pruned weight is exactly 0 in int8 too
    quant = onnx.load(str(tmp_path / "sparse" / "model.int8.onnx"))
    qweights = [onnx.numpy_helper.to_array(t) for t in quant.graph.initializer
                if len(t.dims) == 4 and t.data_type == onnx.TensorProto.INT8]
    assert [w.shape for w in qweights] == [w.shape for w in weights]  # same order, renamed
    assert sum(int(((w == 0) & (q != 0)).sum()) for w, q in zip(weights, qweights)) == 0
    points = [onnx.numpy_helper.to_array(t) for t in quant.graph.initializer
              if t.name.endswith("_zero_point") and t.data_type == onnx.TensorProto.INT8]
    assert points and all((p == 0).all() for p in points)


def test_unstructured_pruning_leaves_the_output_layer_whole() -> None:
    """Regression: one global threshold took 98% of a trained SqueezeNet 1.1's conv10 at
    0.8 (its weights start at std 0.01 and stay small) and every digit got one class."""
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export.prune import weight_sparsity

    torch.manual_seed(0)
    model = create_model("squeezenet1_1", num_classes=10)
    final = model.classifier[1].weight
    report = prune(model, PruneSpec(0.8, method="unstructured"), resolution=32, in_chans=3)
    assert report.sparsity == pytest.approx(0.8, abs=1e-4)  # the share asked, of all weights
    assert weight_sparsity(model) == pytest.approx(0.8, abs=1e-4)
    assert int((model.classifier[1].weight == 0).sum()) == 0 and final.abs().max() > 0
    lenet = create_model("lenet5")  # its 84 x 10 output layer is 1.4% of the weights
    with pytest.raises(EdgeCNNError, match="output layer keeps"):
        prune(lenet, PruneSpec(0.99, method="unstructured"), resolution=32, in_chans=1)


def test_iterative_pruning_steps_follow_the_cubic_schedule() -> None:
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export.prune import ratio_steps

    steps = ratio_steps(PruneSpec(0.9, method="unstructured", finetune_epochs=1, steps=4))
    assert steps == pytest.approx([0.9 * (1 - 0.75 ** 3), 0.9 * (1 - 0.5 ** 3),
                                   0.9 * (1 - 0.25 ** 3), 0.9])
    assert ratio_steps(PruneSpec(0.5)) == [0.5]
    with pytest.raises(EdgeCNNError, match="unstructured"):
        PruneSpec(0.5, steps=2, finetune_epochs=1)
    with pytest.raises(EdgeCNNError, match="fine-tuning"):
        PruneSpec(0.5, method="unstructured", steps=2)
    with pytest.raises(EdgeCNNError, match="sgd or adamw"):
        PruneSpec(0.5, finetune_optimizer="adam")  # type: ignore[arg-type]


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


def test_pruning_that_costs_accuracy_without_fine_tuning_warns(tmp_path: Path, capsys,
                                                               mobilenet_ckpt: Path) -> None:  # noqa: F811
    """A new user pruned a trained model without --finetune-epochs and lost half its top-1
    in silence: a loss above a point is one warning line naming the flag."""
    from edgecnn.cli.main import main

    code = main(["export", str(mobilenet_ckpt), "--prune", "0.75", "-o", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 0, err
    pr = json.loads((tmp_path / "p" / "export.json").read_text())["pruning"]
    assert pr["top1_before"] - pr["top1_pruned"] > 1.0, pr  # 3/4 of the MACs gone, untuned
    warned = [ln for ln in err.splitlines() if "pruning cost" in ln]
    assert len(warned) == 1 and "--finetune-epochs" in warned[0], err
    assert f"{pr['top1_before']:.1f}% -> {pr['top1_pruned']:.1f}%" in warned[0]


@pytest.mark.parametrize("optimizer,steps", [("sgd", 1), ("adamw", 2)])
def test_unstructured_finetune_keeps_the_zeros(tmp_path: Path, optimizer: str, steps: int,
                                               lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.export import export

    res = export(ExportSpec(CheckpointSource(str(lenet_ckpt)),
                            prune=PruneSpec(0.5, method="unstructured", finetune_epochs=1,
                                            finetune_optimizer=optimizer, steps=steps),
                            output=str(tmp_path / "u")))
    pr = res.report["pruning"]
    assert pr["sparsity"] >= 0.5
    assert pr["finetune_optimizer"] == optimizer
    assert pr["finetune_lr"] == pytest.approx({"sgd": 0.01, "adamw": 2e-4}[optimizer])
    assert [s["ratio"] for s in pr["steps"]] == ([0.5] if steps == 1 else [0.4375, 0.5])
    proto = onnx.load(str(res.path / "model.onnx"))
    weights = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer
               if len(t.dims) >= 2]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)
    assert zeros >= 0.49
    assert pr["top1_after"] is not None and pr["top1_after"] > 50  # still a digit classifier


def test_pruning_rounds_to_8_by_default_and_reports_what_alignment_bought(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MobileNet v1 alpha 0.35: the paper's widths 11/22/44/... are not multiples of 8.
    Pruned by default, every layer pruning touched keeps a multiple of 8, and the report
    splits MACs and latency into the removal (against the same target unrounded) and the
    rounding; --prune-round-to 1 gives exactly that unrounded reference's channel counts.
    No assertion on which is faster: that is the machine's to say."""
    from edgecnn.cli.main import main

    args = ["export", "mobilenet", "--alpha", "0.35", "--resolution", "32", "--num-classes",
            "10", "--prune", "0.3", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "r8")]) == 0
    out = capsys.readouterr().out
    r8 = json.loads((tmp_path / "r8" / "export.json").read_text())
    pr = r8["pruning"]
    assert r8["options"]["prune"]["round_to"] == 8
    assert pr["channels"] and all(after % 8 == 0 for _, after in pr["channels"].values())
    graph = onnx.load(str(tmp_path / "r8" / "model.onnx")).graph
    dims = {t.name: t.dims for t in graph.initializer}
    convs = [dims[n.input[1]][0] for n in graph.node if n.op_type == "Conv"]
    assert convs and all(c % 8 == 0 for c in convs)  # every conv was 11/22/44/89/179/358
    aligned = pr["alignment"]
    assert aligned["round_to"] == 8 and aligned["macs_rounded"] == pr["macs_after"]
    pairs = aligned["channels"].values()  # {layer: [unrounded, rounded]}
    assert any(a % 8 for a, _ in pairs) and all(b % 8 == 0 and a != b for a, b in pairs)
    lat = r8["latency_ms"]
    assert min(lat["unpruned"], lat["pruned"], lat["pruned_unrounded"]) > 0
    assert lat["speedup_removal"] == pytest.approx(lat["unpruned"] / lat["pruned_unrounded"],
                                                   rel=0.01)
    assert lat["speedup_alignment"] == pytest.approx(lat["pruned_unrounded"] / lat["pruned"],
                                                     rel=0.01)
    assert lat["speedup"] == pytest.approx(lat["speedup_removal"] * lat["speedup_alignment"],
                                           rel=0.01)
    assert "removal (channels as ranked, unrounded): MACs" in out
    assert f"{lat['pruned_unrounded']:.3f} ms -> {lat['pruned']:.3f} ms" in out
    assert "alignment (rounded to multiples of 8): MACs" in out
    assert f"{len(aligned['channels'])} layers changed" in out

    assert main([*args, "--prune-round-to", "1", "-o", str(tmp_path / "r1")]) == 0
    captured = capsys.readouterr()
    r1 = json.loads((tmp_path / "r1" / "export.json").read_text())["pruning"]
    assert r1["alignment"] is None and "alignment (" not in captured.out
    assert r1["macs_after"] == aligned["macs_unrounded"]
    assert {k: r1["channels"][k][1] for k in aligned["channels"]} == \
        {k: a for k, (a, _) in aligned["channels"].items()}
    assert "--prune-round-to 8 (the default) rounds them" in captured.err


@pytest.mark.parametrize("extra,message", [
    ([], "--prune-round-to needs --prune"),
    (["--prune", "0.5", "--prune-method", "unstructured"],
     "--prune-round-to applies to structured pruning"),
])
def test_prune_round_to_without_structured_pruning_is_an_error(
        extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecnn.cli.main import main

    assert main(["export", "lenet5", "--prune-round-to", "4", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--prune-steps", "2"], "--prune-steps needs --prune"),
    (["--prune", "0.5", "--prune-method", "unstructured", "--finetune-optimizer", "adamw"],
     "--finetune-optimizer needs --finetune-epochs"),
    (["--prune", "0.5", "--prune-steps", "2", "--finetune-epochs", "1"],
     "prune steps apply to unstructured pruning"),
])
def test_iterative_and_optimizer_flags_are_checked(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from edgecnn.cli.main import main

    assert main(["export", "lenet5", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
