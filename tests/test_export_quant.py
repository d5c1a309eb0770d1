"""int8: the scheme per target, the TensorRT checker, the accuracy guard, QAT, random
calibration. Real quantizer (ONNX Runtime's), real data (scikit-learn's digits)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

import torch

from edgecnn.export.inputs import Preprocess, load_images
from edgecnn.export.spec import CheckpointSource, ExportSpec, Int8Spec, ZooSource
from tests.export_helpers import CostTimer, lenet_ckpt  # noqa: F401  (fixture)

pytest.importorskip("onnxruntime")


def qdq_params(proto: onnx.ModelProto) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(node, scale, zero point) of every QuantizeLinear/DequantizeLinear."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    return [(n.name, inits[n.input[1]], inits[n.input[2]]) for n in proto.graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]


def test_cpu_int8_with_real_calibration_and_guard(tmp_path: Path,
                                                  lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.export import export

    # int8 convolutions at half fp32's cost (injected): every block int8, on any machine
    res = export(ExportSpec(CheckpointSource(str(lenet_ckpt)),
                            int8=Int8Spec("digits", calib_samples=64, blocks="auto",
                                          timer=CostTimer(0.5)),
                            output=str(tmp_path / "q")))
    proto = onnx.load(str(res.path / "model.int8.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgecnn.precision"] == "int8" and meta["edgecnn.trained"] == "true"
    assert meta["edgecnn.extra.calibration"].startswith("digits (64 train images")
    # the CPU scheme, on the all-int8 graph of the exported fp32 file
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.quantize import preprocess, quantize
    from edgecnn.export.targets import load_target

    calib = load_images("digits", "train", Preprocess(32, (0.5,), (0.5,)), limit=16).array()
    all_int8 = quantize(preprocess(onnx.load(str(res.path / "model.onnx"))),
                        CalibrationReader(calib), load_target("cpu-x86").int8)
    params = qdq_params(all_int8)
    activations = [zp for _, s, zp in params if zp.dtype == np.uint8]
    weights = [(s, zp) for _, s, zp in params if zp.dtype == np.int8]
    assert activations, "CPU targets: uint8 (asymmetric) activations"
    assert weights and all(np.all(zp == 0) for _, zp in weights), "symmetric int8 weights"
    assert any(s.ndim == 1 and s.size > 1 for s, _ in weights), "per-channel weight scales"
    g = res.report["int8"]["guard"]
    step = g["steps"][g["chosen"]]
    assert g["top1_fp32"] > 80 and g["passed"] is True
    assert step["drop"] <= 1.0 and step["agreement"] > 90
    # LeNet-5 after 3 epochs sits a held-out image or two from the 1-point limit (360
    # images: 0.28 points each): plain int8 passes, or the first layer kept float does
    assert res.report["int8"]["written"] is True and step["step"] in ("int8", "float_layers")
    assert len(step["float_layers"]) <= 1
    assert res.report["data"]["held_out_images"] == 360  # digits' whole val split
    blocks = res.report["int8"]["blocks"]  # every block profiled in fp32 and int8
    assert {b["block"] for b in blocks["blocks"]} >= {"/features/features.0", "/classifier"}
    assert all(b["fp32_ms"] > 0 and b["int8_ms"] > 0 for b in blocks["blocks"]
               if b["block"].startswith("/features/features.0"))
    assert blocks["search_s"] > 0 and blocks["profiled_sessions"] >= 2
    written_float = set(res.report["int8"]["float_layers"])
    assert set(step["float_layers"]) == written_float  # the guard's choice is the file
    # the blocks kept float for speed are float in the file written: no dequantized weight
    dequantized = {o for n in proto.graph.node if n.op_type == "DequantizeLinear"
                   for o in n.output}
    float_blocks = {b["block"] for b in blocks["blocks"] if b["precision"] == "float"}
    from edgecnn.export.mixed import block_of

    for conv in (n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")):
        float_now = conv.name in written_float
        assert (conv.input[1] in dequantized) != float_now
        if block_of(conv.name) in float_blocks and "float_blocks_dropped" not in blocks:
            assert float_now
    verdict, latency = res.report["int8"]["verdict"], res.report["int8"]["latency"]
    for runtime in ("onnxruntime", "openvino"):  # the final graph against fp32 in each
        assert latency[runtime]["fp32_ms"] > 0 and latency[runtime]["int8_ms"] > 0
        assert verdict["speedups"][runtime] == latency[runtime]["speedup"]
    assert verdict["top1_change"] == -step["drop"]
    assert isinstance(verdict["worth_deploying"], bool) and verdict["reason"]
    # `edgecnn bench` on the artifact says the same verdict, beside what it measures now
    from edgecnn.bench.report import render
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.timing.loop import TimingPlan

    records, cond = run_bench([str(res.path)], BenchConfig(
        precisions=("fp32", "int8"), threads=1, plan=TimingPlan(warmup=1, iters=4), rounds=1))
    assert all(r.roofline_pct and r.roofline_pct > 0 for r in records)  # both precisions
    assert {k.split()[2] for k in cond["roofline"]} == {"fp32", "int8"}
    (label, seen), = cond["int8_verdicts"].items()
    assert seen["export"] == verdict and seen["measured_speedup"]["onnxruntime batch 1"] > 0
    assert f"int8 verdict for {label}: " in render(records, "table", cond)
    final = res.report["int8"]["final"]  # what the written file scores: the guard's choice
    assert final["drop"] <= 1.0 and final["top1_int8"] == step["top1_int8"]


def test_qat_epochs_run_through_export(tmp_path: Path, lenet_ckpt: Path) -> None:  # noqa: F811
    """Two layers collapse in int8 (conv1 and c5, one output channel each scaled 1000x
    before its tanh) and the guard may keep only one LeNet layer in float (a quarter of 5):
    calibration and float layers cannot reach the budget, so QAT runs, through export."""
    from edgecnn.checkpoint import load_checkpoint, save_checkpoint
    from edgecnn.export import export

    data = load_checkpoint(lenet_ckpt)
    state = data["state_dict"]
    for layer in ("features.0", "c5.0"):
        state[f"{layer}.weight"][0] *= 1000
        state[f"{layer}.bias"][0] *= 1000
    hostile = save_checkpoint({k: v for k, v in data.items() if k != "format"},
                              tmp_path / "hostile.pt")
    # every block int8: the guard's steps decide alone
    res = export(ExportSpec(CheckpointSource(str(hostile)),
                            int8=Int8Spec("digits", calib_samples=32, max_drop=1.0,
                                          qat_epochs=1, blocks="all", timer=CostTimer(0.5)),
                            output=str(tmp_path / "qat")))
    guard = res.report["int8"]["guard"]
    steps = guard["steps"]
    assert [s["step"] for s in steps[:3]] == ["int8", "calibrate:entropy",
                                              "calibrate:percentile"]
    assert all(s["drop"] > 1.0 for s in steps[:-1]), "nothing cheaper than QAT passes"
    assert steps[-1]["step"] == "qat" and steps[-1]["top1_int8"] is not None
    assert res.report["int8"]["blocks"]["reason"] == "--int8-blocks all"
    meta = {p.key: p.value for p in onnx.load(str(res.path / "model.int8.onnx")).metadata_props}
    chosen = steps[guard["chosen"]]
    assert meta["edgecnn.extra.qat"] == ("true" if chosen["step"] == "qat" else "false")


def test_tensorrt_scheme_is_symmetric_and_passes_the_checker(tmp_path: Path) -> None:
    from edgecnn.export import export
    from edgecnn.export.quantize import tensorrt_problems

    res = export(ExportSpec(ZooSource("mobilenet_v2", resolution=32, num_classes=10),
                            target="tensorrt", int8=Int8Spec("random", calib_samples=8),
                            output=str(tmp_path / "t")))
    proto = onnx.load(str(res.path / "model.int8.onnx"))
    params = qdq_params(proto)
    assert params and all(zp.dtype == np.int8 and np.all(zp == 0) for _, _, zp in params)
    assert res.report["int8"]["tensorrt_checks"] == {"passed": True, "problems": []}
    assert res.report["int8"]["float_layers"] == []  # TensorRT: every conv int8, no search
    assert res.report["int8"]["verdict"]["speedup"] is None  # timed on its device
    # the residual Adds of the inverted residual blocks have quantized inputs
    assert any(n.op_type == "Add" for n in proto.graph.node)
    assert tensorrt_problems(proto) == []
    assert {o.domain for o in proto.opset_import} == {""}  # no stray domains for a parser
    meta = {p.key: p.value for p in proto.metadata_props}
    assert "random" in meta["edgecnn.extra.calibration"]
    assert res.report["int8"]["random_calibration"] is True
    assert any("random inputs" in w for w in res.report["warnings"])


def test_tensorrt_checker_finds_what_tensorrt_refuses(tmp_path: Path) -> None:
    """The CPU scheme (uint8, zero points != 0) and a float layer fail the offline check."""
    from edgecnn.export import export
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.quantize import preprocess, quantize, tensorrt_problems
    from edgecnn.export.targets import load_target

    res = export(ExportSpec(ZooSource("mobilenet_v2", resolution=32, num_classes=10),
                            output=str(tmp_path / "c")))
    # the CPU scheme on every block (the export's own int8 file may keep blocks float where
    # int8 is slower on the machine at hand)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    cpu = quantize(preprocess(onnx.load(str(res.path / "model.onnx"))), CalibrationReader(x),
                   load_target("cpu-x86").int8)
    problems = tensorrt_problems(cpu)
    assert any("zero point is not 0" in p for p in problems)
    fp32 = onnx.load(str(res.path / "model.onnx"))
    problems = tensorrt_problems(fp32)
    assert any("is not behind a Q/DQ pair" in p for p in problems)
    assert any("residual Add input" in p for p in problems)


def _hostile_lenet(ckpt: Path) -> tuple[onnx.ModelProto, np.ndarray, object]:
    """LeNet-5 whose first conv has one output channel scaled 1000x before its tanh. In
    float the channel saturates (tanh is ±1 either way) and the rest is unchanged; in int8
    the shared per-tensor range of that conv output is 1000x wider, so the other five
    channels are rounded to a few levels: a real, reproducible int8 accuracy collapse."""
    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.onnx_io import simplify, to_onnx_proto
    from edgecnn.export.quantize import preprocess

    data = load_checkpoint(ckpt)
    model = model_from_checkpoint(data)
    with torch.no_grad():
        conv = model.features[0]
        conv.weight[0] *= 1000
        conv.bias[0] *= 1000
    pre = Preprocess(32, tuple(data["mean"]), tuple(data["std"]))
    proto = preprocess(simplify(to_onnx_proto(model, torch.zeros(1, 1, 32, 32))))
    calib = load_images("digits", "train", pre, limit=64).array()
    return proto, calib, load_images("digits", "val", pre)


def test_guard_tries_methods_then_keeps_the_sensitive_layer_in_float(
        tmp_path: Path, lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.export.guard import GuardConfig, run_guard
    from edgecnn.export.quantize import layer_sqnr
    from edgecnn.export.targets import load_target

    proto, calib, held = _hostile_lenet(lenet_ckpt)
    result = run_guard(proto, calib, held, load_target("cpu-x86").int8,
                       GuardConfig(method="minmax", max_drop=1.0), cache_dir=tmp_path)
    steps = result.candidates
    assert [s.method for s in steps[:3]] == ["minmax", "entropy", "percentile"]
    assert all(s.accuracy.drop > 1.0 for s in steps[:3]), "the collapse is real for every " \
        "calibration"
    last = steps[-1]  # the guard stops at the first candidate within the budget
    assert last.name == "float_layers" and last.float_layers == ("/features/features.0/Conv",)
    assert last.accuracy.passed and last.accuracy.drop <= 1.0
    # the SQNR ranking named the layer whose output lost the most
    assert result.sensitivity[0]["node"] == "/features/features.0/Conv"
    assert result.sensitivity[0]["sqnr_db"] < 10
    kept = [n for n in last.proto.graph.node if n.op_type == "Conv"]
    assert any(n.input[1] == "features.0.weight" for n in kept), "conv1 kept its float weight"
    # an unharmed model ranks low noise everywhere
    ranks = layer_sqnr(proto, last.proto, held.array(16))
    assert {r.node for r in ranks} >= {"/features/features.3/Conv", "/classifier/Gemm"}


def test_guard_reaches_qat_and_reports_every_step(tmp_path: Path,
                                                  lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.guard import GuardConfig, run_guard
    from edgecnn.export.onnx_io import simplify, to_onnx_proto
    from edgecnn.export.qat import qat_finetune
    from edgecnn.export.quantize import preprocess
    from edgecnn.export.targets import load_target

    proto, calib, held = _hostile_lenet(lenet_ckpt)
    scheme = load_target("cpu-x86").int8
    data = load_checkpoint(lenet_ckpt)
    calls = []

    def qat() -> onnx.ModelProto:
        model = model_from_checkpoint(data)
        calls.append(1)
        qat_finetune(model, scheme, data="digits", epochs=1, resolution=32,
                     mean=tuple(data["mean"]), std=tuple(data["std"]))
        return preprocess(simplify(to_onnx_proto(model, torch.zeros(1, 1, 32, 32))))

    # no float layers allowed: after the calibration methods, QAT is the only step left
    result = run_guard(proto, calib, held, scheme,
                       GuardConfig(max_drop=1.0, max_float_fraction=0.0), cache_dir=tmp_path,
                       qat=qat)
    assert calls == [1]
    assert [s.name for s in result.candidates] == ["int8", "calibrate:entropy",
                                                   "calibrate:percentile", "qat"]
    qat_step = result.candidates[-1].accuracy
    assert qat_step.top1 is not None and qat_step.agreement is not None
    # the callable fine-tuned the checkpoint's sound weights: their int8 is within the limit
    assert qat_step.passed and qat_step.drop <= 1.0


def test_qat_leaves_a_plain_float_model(lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.qat import fake_quantized, weight_grid
    from edgecnn.export.targets import load_target

    model = model_from_checkpoint(load_checkpoint(lenet_ckpt))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 1, 32, 32)
    with fake_quantized(model, load_target("cpu-x86").int8):
        model.train()
        model(x)  # observers see data
        model.eval()
        rounded = model(x)
        conv = model.features[0]
        w, orig = conv.weight, conv.parametrizations.weight.original
        # rounded to the exporter's int8 grid of each output channel (weight_grid: the
        # range the int8 file is written in): off by at most half a step
        step = orig.abs().amax(dim=(1, 2, 3)) / weight_grid(load_target("cpu-x86").int8)[1]
        err = (w - orig).abs().amax(dim=(1, 2, 3))
        assert torch.all(err <= step * 0.5 + 1e-6) and err.max() > 0
    assert set(model.state_dict()) == set(before)  # no observers or parametrizations left
    plain = model(x)
    assert torch.allclose(plain, model_from_checkpoint(load_checkpoint(lenet_ckpt))(x))
    assert not torch.equal(rounded, plain)


def test_random_calibration_must_be_explicit(tmp_path: Path, capsys) -> None:
    from edgecnn.cli.main import main

    assert main(["export", "lenet5", "--int8", "-o", str(tmp_path / "a")]) == 2
    assert "--calib-data random" in capsys.readouterr().err
    assert main(["export", "lenet5", "--int8", "--calib-data", "random", "--int8-blocks",
                 "all", "--calib-samples", "4", "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "random inputs" in err
    report = json.loads((tmp_path / "a" / "export.json").read_text())
    assert report["int8"]["guard"]["passed"] is None  # nothing measured, and it says so


@pytest.mark.parametrize("flags", [{"avx2", "fma"}, {"avx2", "avx512_vnni"}])
def test_cpu_x86_on_a_vnni_host_names_the_vnni_recipe(tmp_path: Path, capsys, monkeypatch,
                                                      flags: set[str]) -> None:
    """cpu-x86's 7-bit weights are for AVX2 CPUs: exported on a VNNI CPU, export says which
    recipe keeps 8 bits; on an AVX2 CPU it says nothing. The file is the recipe's either
    way (the CPU is injected: the test does not depend on the one it runs on)."""
    import platform

    from edgecnn import host
    from edgecnn.cli.main import main

    monkeypatch.setattr(host, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert main(["export", "lenet5", "--int8", "--calib-data", "random", "--calib-samples",
                 "4", "-o", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    said = "for devices that have it too, --target cpu-x86-vnni keeps 8 bits" in err
    assert said == ("avx512_vnni" in flags), err
    report = json.loads((tmp_path / "a" / "export.json").read_text())
    assert report["int8"]["weight_range_reduced"] is True


def test_cli_int8_options_reach_the_guard(tmp_path: Path, capsys,
                                          lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.cli.main import main

    out = tmp_path / "g"
    code = main(["export", str(lenet_ckpt), "--int8", "--calib-data", "digits",
                 "--calib-samples", "32", "--calib-method", "percentile", "--max-drop", "0",
                 "--int8-blocks", "all", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((out / "export.json").read_text())
    first = report["int8"]["guard"]["steps"][0]
    assert first["method"] == "percentile" and report["int8"]["max_drop"] == 0
    assert report["data"]["calibration_images"] == 32
    # one top-1 line (each file's), then the int8 guard's agreement and step, no repeat
    assert captured.out.count("top-1") == 1 and "model.int8.onnx" in captured.out
    assert "int8: agreement with fp32 " in captured.out and ", percentile" in captured.out
    assert "calibrating on all" not in captured.err


def test_more_calibration_images_than_the_data_has_is_said(tmp_path: Path, capsys,
                                                          lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.cli.main import main

    out = tmp_path / "all"
    assert main(["export", str(lenet_ckpt), "--int8", "--calib-data", "digits",
                 "--calib-samples", "100000", "-o", str(out)]) == 0
    n = json.loads((out / "export.json").read_text())["data"]["calibration_images"]
    assert 0 < n < 100000
    assert (f"calibrating on all {n:,} training images of digits (--calib-samples asked for "
            "100,000)") in capsys.readouterr().err


def test_weight_range_follows_the_recipe_not_the_cpu(lenet_ckpt: Path) -> None:  # noqa: F811
    """Reduced: every int8 weight within [-64, 64], so an AVX2 u8 x s8 pair sum (two
    255 * w products in int16) cannot saturate; full: the per-channel maxima reach 127. Auto
    the recipe says which, whatever CPU exports: cpu-x86 (every x86-64, AVX2 included)
    reduced, cpu-x86-vnni and cpu-arm full."""
    from dataclasses import replace

    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.onnx_io import simplify, to_onnx_proto
    from edgecnn.export.qat import weight_grid
    from edgecnn.export.quantize import preprocess, quantize, weight_range
    from edgecnn.export.targets import load_target

    data = load_checkpoint(lenet_ckpt)
    proto = preprocess(simplify(to_onnx_proto(model_from_checkpoint(data),
                                              torch.zeros(1, 1, 32, 32))))
    calib = load_images("digits", "train", Preprocess(32, tuple(data["mean"]),
                                                      tuple(data["std"])), limit=16).array()
    scheme = load_target("cpu-x86").int8
    peaks = {}
    for choice in ("full", "reduced"):
        q = quantize(proto, CalibrationReader(calib), replace(scheme, weight_range=choice))
        weights = [a for a in (onnx.numpy_helper.to_array(t) for t in q.graph.initializer)
                   if a.dtype == np.int8 and a.ndim == 4]
        peaks[choice] = max(int(np.abs(w).max()) for w in weights)
    assert peaks == {"full": 127, "reduced": 64}
    for choice, peak in peaks.items():  # QAT trains on the grid the exporter writes
        assert weight_grid(replace(scheme, weight_range=choice)) == (-peak, peak)
    assert [weight_range(load_target(t).int8)[0] for t in
            ("cpu-x86", "cpu-x86-vnni", "cpu-arm", "tensorrt")] == [True, False, False, False]
    assert "recipe" in weight_range(scheme)[1]


def test_which_cpus_clip_8_bit_weights() -> None:
    """The guard scores int8 as Q/DQ ops where the exporting CPU's fused kernels would clip
    the recipe's 8-bit weights (tests/test_arm64.py checks its figure against aarch64)."""
    from edgecnn.host import int8_saturates

    assert int8_saturates("x86_64", {"sse4_2", "avx2", "fma"})  # Zen 3, Haswell..Ice Lake
    assert int8_saturates("x86_64", {"avx2", "avx512f", "avx512bw"})  # Skylake-X: no VNNI
    assert not int8_saturates("x86_64", {"avx2", "avx512bw", "avx512_vnni"})  # Zen 4
    assert not int8_saturates("x86_64", {"avx2", "avx_vnni"})  # Alder Lake
    assert not int8_saturates("aarch64", {"asimd", "asimddp"})


def test_guard_puts_float_blocks_back_in_int8_when_they_cost_accuracy(
        tmp_path: Path, lenet_ckpt: Path) -> None:  # noqa: F811
    """The first candidate (float blocks kept for speed) loses accuracy: the guard's next
    step is the same calibration with every block int8, and it is kept when within budget."""
    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.guard import GuardConfig, run_guard
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.onnx_io import simplify, to_onnx_proto
    from edgecnn.export.quantize import preprocess, quantize
    from edgecnn.export.targets import load_target

    hostile, calib, held = _hostile_lenet(lenet_ckpt)
    scheme = load_target("cpu-x86").int8
    keep = ["/features/features.3/Conv"]  # as if the search had kept it float for speed
    bad_first = quantize(hostile, CalibrationReader(calib), scheme, exclude=keep)
    data = load_checkpoint(lenet_ckpt)
    sound = preprocess(simplify(to_onnx_proto(model_from_checkpoint(data),
                                              torch.zeros(1, 1, 32, 32))))
    # a 2-point budget: the sound LeNet's int8 drops 0.8-1.1 points (a held-out image
    # either way of the default 1.0), the hostile placement about 6
    result = run_guard(sound, calib, held, scheme, GuardConfig(max_drop=2.0),
                       cache_dir=tmp_path, keep_float=keep, first=bad_first)
    first, second = result.candidates
    assert first.name == "placement" and first.float_layers == tuple(keep)
    assert first.accuracy.drop > 2.0
    assert second.note == "float blocks back in int8" and second.float_layers == ()
    assert second.accuracy.passed and second.accuracy.drop <= 2.0
    convs = [n for n in second.proto.graph.node if n.op_type == "Conv"]
    assert all(n.input[1] != "features.3.weight" for n in convs), "features.3 is int8 again"


def test_chunked_calibration_gives_onnxruntimes_own_ranges(tmp_path: Path,
                                                           lenet_ckpt: Path) -> None:  # noqa: F811
    """calibrate() feeds ONNX Runtime's calibrator a few batches at a time (memory); the
    ranges must be those of ORT's own loop over every image at once."""
    from onnxruntime.quantization.calibrate import create_calibrator, load_tensors_data

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.calibration import calibrate, ort_method, snap

    proto, calib, _ = _hostile_lenet(lenet_ckpt)
    model = tmp_path / "m.onnx"
    onnx.save(proto, str(model))
    for method in ("minmax", "percentile"):
        cache = tmp_path / f"{method}.json"
        calibrate(model, CalibrationReader(calib[:40]), method, cache, chunk=8)  # 5 chunks
        ours = load_tensors_data(cache).data
        options = {"percentile": 99.999, "num_bins": 2048} if method == "percentile" else {}
        own = create_calibrator(model, None, augmented_model_path=str(tmp_path / "aug.onnx"),
                                calibrate_method=ort_method(method), extra_options=options)
        own.collect_data(CalibrationReader(calib[:40]))
        theirs = own.compute_data().data
        assert set(ours) == set(theirs)
        for name, value in theirs.items():  # ours are snapped outward (calibration.snap)
            want = [float(np.asarray(snap(v, d)).ravel()[0])
                    for v, d in zip(value.range_value, (-1, 1))]
            got = [float(np.asarray(v).ravel()[0]) for v in ours[name].range_value]
            tol = 0 if method == "minmax" else 0.02 * max(abs(want[0]), abs(want[1]), 1e-6)
            assert got == pytest.approx(want, abs=tol), (method, name)


def test_minmax_calibration_of_a_graph_with_a_scalar_tensor(tmp_path: Path) -> None:
    """calibrate() reduces min/max per channel for speed; a tensor without a channel axis
    (here a scalar: the mean of the whole input) makes it reduce whole instead, and the
    ranges are ONNX Runtime's own (snapped)."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.calibrate import create_calibrator, load_tensors_data

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.calibration import calibrate, snap

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3))
                                .astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=0),  # rank 0
         helper.make_node("Mul", ["input", "mean"], ["scaled"]),
         helper.make_node("Conv", ["scaled", "w"], ["output"], pads=[1, 1, 1, 1])],
        "scalar", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "scalar.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(1).standard_normal((20, 3, 8, 8)).astype(np.float32) + 0.5
    calibrate(path, CalibrationReader(x, 8), "minmax", tmp_path / "ours.json")
    ours = load_tensors_data(tmp_path / "ours.json").data
    own = create_calibrator(path, None, augmented_model_path=str(tmp_path / "aug.onnx"))
    own.collect_data(CalibrationReader(x, 8))
    theirs = own.compute_data().data
    assert "mean" in theirs and set(ours) == set(theirs)
    for name, value in theirs.items():
        want = [float(np.asarray(snap(v, d)).ravel()[0])
                for v, d in zip(value.range_value, (-1, 1))]
        assert [float(np.asarray(v).ravel()[0]) for v in ours[name].range_value] == \
            pytest.approx(want, rel=1e-6), name


@pytest.mark.parametrize("opset", [17, 18])  # 18: the reductions take axes as inputs
def test_minmax_ranges_of_relu_and_clip_outputs_are_computed_exactly(tmp_path: Path,
                                                                      opset: int) -> None:
    """calibrate() does not reduce the output of a Relu or a constant Clip: it clamps the
    range of its input. The ranges must be ONNX Runtime's own, to the bit (snapped), for a
    Relu, a ReLU6 (Clip with bound inputs), a Relu of a Relu, and a Clip whose bound is a
    computed scalar (not constant: still observed; the scalar makes the reductions whole
    tensor, the other path)."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.calibrate import create_calibrator, load_tensors_data

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.calibration import _unobserve_clamps, calibrate, snap

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("w1", (4, 3, 3, 3)), ("w2", (4, 4, 1, 1)))]
    inits += [numpy_helper.from_array(np.float32(v), n) for n, v in (("lo", 0.0), ("hi", 0.5))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Relu", ["r1"], ["r2"]),  # a clamp of a clamp
         helper.make_node("Conv", ["r2", "w2"], ["c2"]),
         helper.make_node("Clip", ["c2", "lo", "hi"], ["six"]),  # a ReLU6 with hi = 0.5
         helper.make_node("ReduceMax", ["c2"], ["bound"], keepdims=0),  # a scalar
         helper.make_node("Clip", ["c2", "", "bound"], ["free"]),  # bound not constant
         helper.make_node("Add", ["six", "free"], ["output"])],
        "clamps", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / "clamps.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((20, 3, 8, 8)).astype(np.float32)
    calibrate(path, CalibrationReader(x, 8), "minmax", tmp_path / "ours.json")
    ours = load_tensors_data(tmp_path / "ours.json").data
    own = create_calibrator(path, None, augmented_model_path=str(tmp_path / "aug.onnx"))
    assert _unobserve_clamps(onnx.load(str(tmp_path / "aug.onnx"))) == {
        "r1": ("c1", 0.0, math.inf), "r2": ("r1", 0.0, math.inf), "six": ("c2", 0.0, 0.5)}
    own.collect_data(CalibrationReader(x, 8))
    theirs = own.compute_data().data
    assert {"r1", "r2", "six", "free"} <= set(theirs) and set(ours) == set(theirs)
    for name, value in theirs.items():
        want = [float(np.asarray(snap(v, d)).ravel()[0])
                for v, d in zip(value.range_value, (-1, 1))]
        assert [float(np.asarray(v).ravel()[0]) for v in ours[name].range_value] == want, name


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_concat_branches_take_the_concats_range(tmp_path: Path, method: str) -> None:
    """Two branches joined by a Concat are quantized at the Concat's scale (one rounding,
    and the runtimes join int8 without rescaling); a branch that something else also reads
    keeps its own range, and so does everything when there is no Concat."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.calibration import calibrate
    from edgecnn.export.quantize import quantize
    from edgecnn.export.targets import load_target

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * k, name)
             for name, shape, k in (("wa", (4, 3, 1, 1), 1.0), ("wb", (4, 3, 3, 3), 3.0),
                                    ("wc", (4, 3, 1, 1), 0.5), ("wd", (2, 8, 1, 1), 1.0),
                                    ("we", (2, 4, 1, 1), 1.0))]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "wa"], ["a"]),
         helper.make_node("Relu", ["a"], ["ra"]),
         helper.make_node("Conv", ["input", "wb"], ["b"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["b"], ["rb"]),
         helper.make_node("Concat", ["ra", "rb"], ["cat"], axis=1),
         helper.make_node("Conv", ["cat", "wd"], ["d"]),
         helper.make_node("Conv", ["input", "wc"], ["c"]),
         helper.make_node("Relu", ["c"], ["rc"]),
         helper.make_node("Concat", ["rc", "rb2"], ["cat2"], axis=1),  # rc: read twice
         helper.make_node("Identity", ["rb"], ["rb2"]),
         helper.make_node("Conv", ["rc", "we"], ["e"]),
         helper.make_node("Concat", ["d", "e", "cat2"], ["output"], axis=1)],
        "branches", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 12, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "branches.onnx"
    onnx.save(model, str(path))
    x = rng.standard_normal((24, 3, 8, 8)).astype(np.float32)
    calibrate(path, CalibrationReader(x, 8), method, tmp_path / "cache.json")
    ranges = {k: [float(np.asarray(v).ravel()[0]) for v in t.range_value]
              for k, t in load_tensors_data(tmp_path / "cache.json").data.items()}
    assert ranges["ra"] == ranges["rb"] == ranges["cat"]
    assert ranges["ra"][1] > 0 and ranges["rc"] != ranges["cat2"]  # rc is also read by a Conv
    assert ranges["d"] == ranges["output"] != ranges["a"]

    # In the int8 graph, the joined branches' Q/DQ pairs carry the Concat's scale.
    q = quantize(onnx.load(str(path)), CalibrationReader(x, 8), load_target("cpu-x86").int8,
                 method=method)
    producer = {o: n for n in q.graph.node for o in n.output}
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    cat = next(n for n in q.graph.node if n.op_type == "Concat" and n.output[0] == "cat")
    scales = {float(consts[producer[i].input[1]]) for i in cat.input}
    out_q = next(n for n in q.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] == "cat")
    assert scales == {float(consts[out_q.input[1]])}


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_takes_a_last_shorter_batch(tmp_path: Path, method: str,
                                                          lenet_ckpt: Path) -> None:  # noqa: F811
    """40 images in batches of 16 end with a batch of 8: ONNX Runtime's histogram
    calibrators stack one call's batches into one array, which failed on that last batch
    (a traceback in the guard's second method, seen from the wheel)."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.onnx_io import batch_dynamic
    from edgecnn.export.calibration import calibrate

    proto, calib, _ = _hostile_lenet(lenet_ckpt)
    model = tmp_path / "m.onnx"
    onnx.save(batch_dynamic(proto), str(model))
    cache = tmp_path / f"{method}.json"
    calibrate(model, CalibrationReader(calib[:40], 16), method, cache)
    ranges = load_tensors_data(cache).data
    assert ranges and all(np.all(np.isfinite(np.asarray(v.range_value, dtype=np.float64)))
                          for v in ranges.values())
