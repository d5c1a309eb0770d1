"""The one int8 decision (export/decision.py): `choose` on candidate values, and the export's
files and verdict following it. Latency is injected (tests/export_helpers.CostTimer), so each
decision checked here is the same on every machine."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edgecnn.export.decision import Accuracy, Candidate, Latency, Policy, choose, timed_on
from tests.export_helpers import CostTimer

RUNTIMES = ("onnxruntime", "openvino")
GRAPH = object()  # stands for an int8 graph: choose never looks inside


def timed(**speedups: float) -> Latency:
    return Latency(1, {k: 1.0 for k in speedups}, {k: 1.0 / v for k, v in speedups.items()})


def passed(drop: float, budget: float = 1.0) -> Accuracy:
    return Accuracy(top1=90.0 - drop, drop=drop, agreement=95.0, passed=drop <= budget)


def test_faster_in_one_runtime_slower_in_the_other_is_one_verdict() -> None:
    """ONNX Runtime 1.6x, OpenVINO 0.9x: written and worth deploying, and the verdict names
    the file to ship per runtime (the two verdicts used to disagree on this case)."""
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.2),
                          latency=timed(onnxruntime=1.6, openvino=0.9))], Policy())
    assert d.written and d.worth_deploying and d.chosen.name == "int8"
    assert d.deploy == {"onnxruntime": "model.int8.onnx", "openvino": "model.onnx"}
    v = d.verdict()
    assert v["runtime"] == "onnxruntime" and v["speedup"] == 1.6 and v["top1_change"] == -0.2
    assert "in openvino deploy model.onnx" in v["reason"]
    assert d.line().startswith("int8 verdict: worth deploying")


@pytest.mark.parametrize("speedups", [{"onnxruntime": 0.98, "openvino": 1.01},
                                      {"onnxruntime": 0.7, "openvino": 0.8}])
def test_auto_writes_no_int8_file_where_int8_gains_nowhere(speedups: dict) -> None:
    d = choose([Candidate("placement", GRAPH, ("a",), accuracy=passed(0.0),
                          latency=timed(**speedups))], Policy(blocks="auto"))
    assert not d.written and d.chosen is None and not d.worth_deploying
    assert d.reason.startswith("int8 is not faster than fp32 here") and d.deploy == {}
    assert d.line() == f"int8 not written: {d.reason}"


def test_deploy_agrees_with_the_verdict_per_runtime() -> None:
    """Below the 1.1x bar everywhere: "not worth it", and deploy names model.onnx in every
    runtime (it used to name model.int8.onnx beside "not worth it ... deploy model.onnx");
    worth it in one runtime only: int8 there, model.onnx in the other, and the reason says so."""
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.1),
                          latency=timed(onnxruntime=0.91, openvino=1.05))], Policy())
    assert d.written and not d.worth_deploying and "deploy model.onnx" in d.verdict_reason
    assert d.deploy == {"onnxruntime": "model.onnx", "openvino": "model.onnx"}
    assert d.slower == ("onnxruntime",)  # beyond the 3% noise band: the "slower" warning
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.1),
                          latency=timed(onnxruntime=1.5, openvino=1.05))], Policy())
    assert d.worth_deploying
    assert d.deploy == {"onnxruntime": "model.int8.onnx", "openvino": "model.onnx"}
    assert "in openvino deploy model.onnx (below 1.1x)" in d.verdict_reason
    assert d.slower == ()  # 1.05x is not slower: no "slower" warning for OpenVINO


def test_faster_without_measured_accuracy_is_not_called_worth_deploying() -> None:
    """Random calibration (no held-out data, an untrained model): the speed is known, the
    accuracy is not. The int8 file ships where it is faster, and the verdict says only that."""
    d = choose([Candidate("int8", GRAPH, accuracy=Accuracy(),
                          latency=timed(onnxruntime=1.3, openvino=2.3))], Policy())
    assert d.written and d.accurate is None and d.worth_deploying  # deployable for speed
    assert d.deploy == {"onnxruntime": "model.int8.onnx", "openvino": "model.int8.onnx"}
    assert d.line().startswith("int8 verdict: faster, accuracy not measured (int8 vs fp32: "
                               "onnxruntime 1.30x, openvino 2.30x, calibrated on random inputs")
    assert d.verdict()["word"] == "faster, accuracy not measured"
    measured = choose([Candidate("int8", GRAPH, accuracy=passed(0.1),
                                 latency=timed(onnxruntime=1.3))], Policy())
    assert measured.word == "worth deploying"


def test_the_verdict_says_where_it_was_timed() -> None:
    """Timed on this machine: said, with a hostname-free record; a recipe for another kind of
    machine (cpu-arm exported here on x86_64) says the timing is not the target's."""
    import platform
    import socket

    here = timed_on("cpu-x86", 2)
    assert here["threads"] == 2 and here["cpu_model"] and here["arch"] == platform.machine()
    assert socket.gethostname() not in str(here.values())
    lat = timed(onnxruntime=1.5)
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.1), latency=lat)],
               Policy(timed_on=here))
    assert d.verdict()["timed_on"] == here
    arm = timed_on("cpu-arm", 2)
    assert arm["is_target"] is (platform.machine() == "aarch64")
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.1), latency=lat)],
               Policy(timed_on=arm))
    if platform.machine() != "aarch64":
        assert (f"timed on this {platform.machine()} machine" in d.line()
                and "not the cpu-arm target: run `edgecnn tune` on the device" in d.line())
    assert d.verdict()["reason"] == d.verdict_reason and d.verdict()["timed_on"] == arm


def test_all_writes_int8_whatever_its_speed() -> None:
    d = choose([Candidate("int8", GRAPH, accuracy=passed(0.1),
                          latency=timed(onnxruntime=0.8, openvino=0.9))], Policy(blocks="all"))
    assert d.written and not d.worth_deploying
    assert set(d.deploy.values()) == {"model.onnx"}
    assert "below 1.1x" in d.verdict_reason


def test_the_float_candidate_writes_nothing() -> None:
    d = choose([Candidate("float", None, ("a", "b"), note="no block ran faster")], Policy())
    assert not d.written and d.reason == "no block ran faster"


def test_accuracy_first_then_the_most_accurate_when_none_passes() -> None:
    fast = timed(onnxruntime=1.5)
    cands = [Candidate("placement", GRAPH, accuracy=passed(3.0), latency=fast),
             Candidate("int8", GRAPH, accuracy=passed(0.5), latency=fast),
             Candidate("calibrate:entropy", GRAPH, accuracy=passed(0.1), latency=fast)]
    assert choose(cands, Policy()).chosen is cands[1]  # the first within the budget
    failing = [Candidate("int8", GRAPH, accuracy=passed(3.0), latency=fast),
               Candidate("calibrate:entropy", GRAPH, accuracy=passed(2.0), latency=fast),
               Candidate("calibrate:percentile", GRAPH, accuracy=passed(2.0), latency=fast)]
    d = choose(failing, Policy())
    assert d.chosen is failing[1] and d.accurate is False and not d.worth_deploying
    assert "2.00 top-1 points" in d.verdict_reason


def test_untimed_targets_say_why() -> None:
    d = choose([Candidate("int8", GRAPH)], Policy(blocks="all", untimed="TensorRT: on device"))
    assert d.written and d.accurate is None and d.verdict()["speedup"] is None
    assert d.verdict_reason == "TensorRT: on device"


# --- through export: the files follow the decision ------------------------------------------

def _export(tmp_path: Path, name: str, int8: object = None):  # noqa: ANN202
    from edgecnn.export import export
    from edgecnn.export.spec import ExportSpec, ZooSource

    return export(ExportSpec(ZooSource("lenet5", resolution=32, num_classes=10), int8=int8,
                             output=str(tmp_path / name)))


def _precision(path: Path) -> str:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}["edgecnn.precision"]


@pytest.mark.parametrize("timer", [CostTimer(2.0), CostTimer(0.5, whole=1.0)],
                         ids=["no-block-pays", "faster-in-profile-not-as-a-whole"])
def test_no_int8_file_when_int8_pays_nowhere_and_model_onnx_untouched(
        tmp_path: Path, timer: CostTimer) -> None:
    """The path seen in the field: the search kept every block float (or the whole graph
    timed no faster): no model.int8.onnx, export.json says why, and model.onnx is byte for
    byte the file an export without --int8 writes, with fp32 in its metadata."""
    from edgecnn.export.spec import Int8Spec
    from edgecnn.runtime import load
    from edgecnn.errors import EdgeCNNError

    plain = _export(tmp_path, "plain")
    res = _export(tmp_path, "q", Int8Spec("random", calib_samples=8, blocks="auto", timer=timer))
    assert not (res.path / "model.int8.onnx").exists()
    section = json.loads((res.path / "export.json").read_text())["int8"]
    assert section["written"] is False and section["reason"]
    assert section["verdict"]["worth_deploying"] is False and section["final"] is None
    assert (res.path / "model.onnx").read_bytes() == (plain.path / "model.onnx").read_bytes()
    assert _precision(res.path / "model.onnx") == "fp32"
    assert any(w.startswith("int8 not written: ") for w in res.warnings)
    with pytest.raises(EdgeCNNError, match="int8 not produced: "):
        load(res.path, precision="int8")
    # bench asked for int8 alone: a line saying why, and nothing measured (no traceback)
    from edgecnn.bench.run import BenchConfig, run_bench

    records, cond = run_bench([str(res.path)], BenchConfig(precisions=("int8",)))
    assert records == [] and any("int8 not produced" in why for why in cond["not_measured"])


def test_int8_blocks_all_writes_int8_arithmetic_even_when_slower(tmp_path: Path) -> None:
    from edgecnn.export.spec import Int8Spec

    timer = CostTimer(2.0)
    res = _export(tmp_path, "all", Int8Spec("random", calib_samples=8, blocks="all",
                                             timer=timer))
    assert timer.calls == ["time"]  # no per-block search
    proto = onnx.load(str(res.path / "model.int8.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("DequantizeLinear") >= 5 and _precision(res.path / "model.int8.onnx") == \
        "int8"
    section = res.report["int8"]
    assert section["written"] and section["float_layers"] == []
    assert section["verdict"]["worth_deploying"] is False
    assert set(section["verdict"]["deploy"].values()) == {"model.onnx"}
    assert section["verdict"]["timed_on"]["threads"] >= 1  # where the verdict was timed
    assert _precision(res.path / "model.onnx") == "fp32"


def test_int8_blocks_auto_is_refused_for_a_target_that_runs_elsewhere(capsys) -> None:
    from edgecnn.cli.main import main

    assert main(["export", "lenet5", "--int8", "--calib-data", "random", "--int8-blocks",
                 "auto", "--target", "cpu-arm", "-o", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--int8-blocks auto" in err[0]
