"""The per-layer roofline (bench/roofline.py): kinds, MACs and bytes from the shapes of a
model defined here and exported by plain torch.onnx, fp32 and int8 (ONNX Runtime's
quantizer), and the machine's measured peaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import onnx

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.quantize import preprocess, quantize
    from edgecnn.export.targets import load_target

    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),  # depthwise
                          nn.Conv2d(8, 16, 1), nn.ReLU(),  # pointwise
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    root = tmp_path_factory.mktemp("roof")
    fp32 = root / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 8, 16, 16),), str(fp32), dynamo=False,
                      input_names=["input"], output_names=["logits"])
    x = np.random.default_rng(0).standard_normal((4, 8, 16, 16), dtype=np.float32)
    q = quantize(preprocess(onnx.load(str(fp32))), CalibrationReader(x),
                 load_target("cpu-x86").int8)
    int8 = root / "m.int8.onnx"
    onnx.save(q, str(int8))
    return fp32, int8


def test_kinds_macs_and_bytes(files: tuple[Path, Path]) -> None:
    from edgecnn.bench.roofline import Peaks, layer_bounds

    fp32, int8 = files
    peaks = Peaks(threads=1, fp32_gmacs=100.0, int8_gmacs=400.0, bandwidth_gbs=10.0)
    b = layer_bounds(fp32, peaks)
    hw = 16 * 16
    assert b["depthwise"]["macs"] == hw * 8 * 9 and b["pointwise"]["macs"] == hw * 8 * 16
    assert b["dense"]["macs"] == 16 * 10
    # fp32 bytes: input + output activations, weights, biases; 4 bytes each
    assert b["depthwise"]["bytes"] == 4 * (hw * 8 + hw * 8 + 8 * 9 + 8)
    assert b["pointwise"]["bytes"] == 4 * (hw * 8 + hw * 16 + 8 * 16 + 16)
    for kind in ("depthwise", "pointwise", "dense"):  # each bound is max(compute, memory)
        row = b[kind]
        assert row["bound_ms"] == pytest.approx(1e3 * max(row["macs"] / 100e9,
                                                           row["bytes"] / 10e9))
    assert b["depthwise"]["bytes"] / 10e9 > b["depthwise"]["macs"] / 100e9  # memory-bound
    assert b["total"]["bound_ms"] == pytest.approx(sum(b[k]["bound_ms"] for k in
                                                       ("pointwise", "depthwise", "dense",
                                                        "other")))
    q = layer_bounds(int8, peaks)  # int8 layers: 1-byte tensors, the int8 peak
    assert q["pointwise"]["macs"] == b["pointwise"]["macs"]
    assert q["pointwise"]["bytes"] == hw * 8 + hw * 16 + 8 * 16 + 4 * 16
    assert q["depthwise"]["bytes"] == hw * 8 * 2 + 8 * 9 + 4 * 8
    assert q["total"]["bound_ms"] < b["total"]["bound_ms"] / 2
    # layers whose bytes fit in the last-level cache take its (faster) rate, the rest DRAM's
    cached = Peaks(threads=1, fp32_gmacs=100.0, int8_gmacs=400.0, bandwidth_gbs=10.0,
                   cache_bandwidth_gbs=40.0, cache_bytes=20_000)
    c = layer_bounds(fp32, cached)
    moved = b["depthwise"]["bytes"]  # 16,704 bytes: within the 20,000 of "cache"
    assert c["depthwise"]["bound_ms"] == pytest.approx(1e3 * max(
        b["depthwise"]["macs"] / 100e9, moved / 40e9))
    assert b["pointwise"]["bytes"] > 20_000  # beyond it: DRAM's rate, as before
    assert c["pointwise"]["bound_ms"] == pytest.approx(b["pointwise"]["bound_ms"])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_profiled_nodes_are_matched_to_their_layers(files: tuple[Path, Path],
                                                    precision: str) -> None:
    """ONNX Runtime's profiler names its fused nodes its own way (an fp32 NCHWc conv after
    its ReLU's output, a QLinearConv after the Conv plus a token); every conv it ran is
    matched to the file's layer and kind, none left as "other"."""
    import json

    import onnx

    from edgecnn.bench.roofline import layer_kinds, profiled_kind
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner

    path = files[precision == "int8"]
    kinds = layer_kinds(path)
    optimized = path.parent / f"optimized-{precision}.onnx"
    options = OrtOptions(threads=1, profile_prefix=str(path.parent / f"prof-{precision}"),
                         optimized_model_path=str(optimized))
    with OrtRunner(path, "cpu", options) as runner:
        for _ in range(3):
            runner.infer(np.zeros((1, 8, 16, 16), np.float32))
        profile = runner.end_profiling()
    assert profile.parent == path.parent and profile.name.startswith(f"prof-{precision}")
    events = [e for e in json.loads(profile.read_text())
              if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    # the profile names the nodes of the optimized graph the runner saved, each once a run
    nodes = {n.name for n in onnx.load(str(optimized)).graph.node}
    assert {e["name"].removesuffix("_kernel_time") for e in events} <= nodes
    convs = [e for e in events if "Conv" in e["args"]["op_name"]]
    assert len(convs) == 3 * 2
    matched = {profiled_kind(kinds, e["name"])[:2] for e in convs}
    assert {kind for _, kind in matched} == {"depthwise", "pointwise"}
    assert len(matched) == 2  # the two convolutions, each under its own node name


def test_profiling_is_asked_for(files: tuple[Path, Path]) -> None:
    from edgecnn.errors import EdgeCNNError
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner

    with OrtRunner(files[0], "cpu", OrtOptions(threads=1)) as runner, \
            pytest.raises(EdgeCNNError, match="was not profiling: set OrtOptions"):
        runner.end_profiling()
    with pytest.raises(EdgeCNNError, match="profile_prefix must be str/NoneType"):
        OrtOptions(profile_prefix=Path("p"))  # type: ignore[arg-type]


def test_measured_peaks() -> None:
    from edgecnn.bench.roofline import measure_peaks

    p = measure_peaks(1)
    assert p.fp32_gmacs > 0.5 and p.int8_gmacs is not None and p.int8_gmacs > 0.5
    assert p.bandwidth_gbs > 0.1
    if p.cache_bytes:  # Linux reports the size of the last-level cache
        assert p.cache_bandwidth_gbs is not None and p.cache_bandwidth_gbs > 0.1


def test_peak_timing_stops_at_its_budget() -> None:
    """A slow or emulated device (qemu's aarch64) must not spend minutes on the peaks: calls
    of 0.3 s with a 1 s budget are one or two warm-ups and one to three timed calls, never
    the 3 + 10 asked for, whatever the machine's speed (a sleep is never shorter)."""
    import time

    from edgecnn.bench.machine import best_time

    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.3)

    best = best_time(slow, repeats=10, warmup=3, budget_s=1.0)
    assert 2 <= len(calls) <= 4 and best >= 0.3


def test_a_wrong_path_fails_before_the_peaks_are_measured(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgecnn.cli.main import main

    def measured(threads: int) -> None:
        raise AssertionError("peaks measured before the artifact was found")

    monkeypatch.setattr("edgecnn.bench.run.measure_peaks", measured)
    assert main(["bench", str(tmp_path / "nope")]) == 2
    assert "no such artifact directory" in capsys.readouterr().err
