"""`edgecnn tune` (edgecnn/tune/run.py): the candidates, the record per device, the runtime
using it, and every bad input leaving the artifact as it was. Measurements are injected
(`Fixed`), so each choice checked here is the same on any machine; one test runs the real
measurement and checks only what does not depend on the machine's speed."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import onnx
import pytest

from edgecnn.errors import EdgeCNNError
from tests.export_helpers import CostTimer

pytest.importorskip("onnxruntime")

SLOW = ("/features/features.2", "/features/features.3")  # blocks whose int8 loses


class Fixed:
    """Profiles from CostTimer (blocks in SLOW lose in int8), whole-file times from `ms`
    (candidate -> ms, the same in every runtime); the int8 file's second timing is
    `ms["int8"] * again`."""

    def __init__(self, ms: dict[str, float], again: float = 1.0, interrupt: bool = False
                 ) -> None:
        self.ms, self.again, self.interrupt = ms, again, interrupt
        self.costs = CostTimer(0.5, slow=SLOW)
        self.timings = 0

    def profile(self, graphs, blocks, runtime="onnxruntime"):  # noqa: ANN001, ANN201
        return self.costs.profile(graphs, blocks)

    def time(self, cases):  # noqa: ANN001, ANN201
        self.timings += 1
        if self.interrupt:
            raise KeyboardInterrupt
        base = {**self.ms, "int8_again": self.ms["int8"] * self.again}
        return {(name, rt): base[name] for name, rt in cases}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MobileNet v1 alpha 0.25 at 32 px, every block int8 (random calibration)."""
    from edgecnn.export import ExportSpec, Int8Spec, ZooSource, export

    out = tmp_path_factory.mktemp("tune") / "mnv1"
    export(ExportSpec(ZooSource("mobilenet", alpha=0.25, resolution=32, num_classes=10),
                      int8=Int8Spec("random", calib_samples=8, timer=CostTimer(0.5)),
                      output=str(out)))  # the export's verdict is not under test: costs counted
    return out


@pytest.fixture()
def artifact(exported: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "a"
    shutil.copytree(exported, copy)
    return copy


def _tune(path: Path, measure: Fixed, **kwargs):  # noqa: ANN003, ANN202
    from edgecnn.tune.run import TuneSpec, tune

    return tune(TuneSpec(str(path), threads=1, runtime="onnxruntime", measure=measure,
                         **kwargs))


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_placement_faster_beyond_noise_is_recorded_and_loaded(artifact: Path) -> None:
    from edgecnn.host import device, device_key
    from edgecnn.runtime import load

    result = _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    rec, key = result.record, device_key(device())
    assert result.choice.candidate == "placement" and rec["file"] == f"model.int8.tuned-{key}.onnx"
    assert set(json.loads((artifact / "tuning.json").read_text())["devices"]) == {key}
    assert rec["device"]["cpu_model"] and rec["threads"] == 1 and rec["runtime_version"]
    assert rec["candidates_ms"] == {"float onnxruntime": 1.4, "int8 onnxruntime": 1.0,
                                    "placement onnxruntime": 0.8}
    assert rec["speedup_vs_fp32"]["placement onnxruntime"] == 1.75
    # the slow blocks are float in the tuned file: their convs read float weights
    tuned = onnx.load(str(artifact / rec["file"]))
    dq = {o for n in tuned.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = {n.name: n.input[1] in dq for n in tuned.graph.node if n.op_type == "Conv"}
    assert all(not q for name, q in convs.items() if name.startswith(SLOW))
    assert any(q for name, q in convs.items() if not name.startswith(SLOW))
    with load(artifact) as model:  # runtime "auto": the record that fits this machine
        assert Path(model.path).name == rec["file"]
        assert model.selection.startswith("onnxruntime on cpu: tuned for this machine")


def test_int8_is_kept_unless_beaten_beyond_the_noise(artifact: Path) -> None:
    # placement 2% faster, but the same file timed twice differs by 3%: int8 stays
    result = _tune(artifact, Fixed({"int8": 1.0, "float": 1.2, "placement": 0.98},
                                   again=1.03))
    assert result.choice.candidate == "int8" and result.record["file"] == "model.int8.onnx"
    assert result.record["noise_band"] == pytest.approx(0.03)
    assert not any(p.name.startswith("model.int8.tuned-") for p in artifact.iterdir())


def test_int8_no_faster_than_fp32_beyond_the_noise_deploys_fp32(artifact: Path) -> None:
    """A new user's MobileNet 0.25x at 32 px: int8 0.118 ms, fp32 0.117 ms. int8 would cost
    accuracy and buy nothing, and export's verdict already said model.onnx."""
    from edgecnn.runtime import load

    result = _tune(artifact, Fixed({"int8": 0.118, "float": 0.117, "placement": 0.125},
                                   again=1.02))
    assert result.choice.candidate == "float" and result.record["file"] == "model.onnx"
    assert "not faster beyond the noise band" in result.record["reason"]
    with load(artifact) as model:
        assert Path(model.path).name == "model.onnx"
    from edgecnn.bench.targets import make_cases, resolve_target

    target = resolve_target(str(artifact), alpha=1.0, resolution=None, precisions=("fp32",))
    (group,) = make_cases(target, runtimes=("onnxruntime",),
                          precisions=("fp32",), batches=(1,), threads=1, device="cpu")
    assert [(c.runtime, c.precision) for c in group] == [  # bench's tuned row: the fp32 file
        ("onnxruntime", "fp32"), ("fastest:onnxruntime/1t", "fp32")]
    # 4% faster than fp32 against a 2% band: int8 pays, and stays
    result = _tune(artifact, Fixed({"int8": 0.96, "float": 1.0, "placement": 1.1}, again=1.02))
    assert result.choice.candidate == "int8" and result.record["file"] == "model.int8.onnx"


def test_a_busy_machine_is_retried_then_recorded_inconclusive(artifact: Path) -> None:
    # placement 10% faster, but the same file timed 20% apart: nothing can be told
    measure = Fixed({"int8": 1.0, "float": 1.3, "placement": 0.9}, again=1.2)
    result = _tune(artifact, measure, retries=2)
    assert measure.timings == 3 and result.record["inconclusive"] is True
    assert result.choice.candidate == "int8" and "inconclusive" in result.record["reason"]


def test_a_win_larger_than_even_a_wide_band_is_taken(artifact: Path) -> None:
    # the same file 20% apart, but placement 50% faster: decided on the first timing
    measure = Fixed({"int8": 1.0, "float": 1.3, "placement": 0.5}, again=1.2)
    result = _tune(artifact, measure, retries=2)
    assert measure.timings == 1 and result.choice.candidate == "placement"
    assert result.record["inconclusive"] is False


def test_tuning_again_replaces_this_devices_record_and_keeps_the_others(
        artifact: Path) -> None:
    from edgecnn.host import device, device_key

    _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    path = artifact / "tuning.json"
    data = json.loads(path.read_text())
    other = dict(next(iter(data["devices"].values())),
                 device={"cpu_model": "Cortex-A76", "arch": "aarch64", "cores": 4})
    data["devices"]["0123456789ab"] = other
    path.write_text(json.dumps(data))
    old_file = artifact / f"model.int8.tuned-{device_key(device())}.onnx"
    assert old_file.exists()
    _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 1.1}))
    devices = json.loads(path.read_text())["devices"]
    assert set(devices) == {device_key(device()), "0123456789ab"}
    assert devices[device_key(device())]["candidate"] == "int8"
    assert devices["0123456789ab"] == other
    assert not old_file.exists()  # no graph is left that no record names


def test_a_record_from_another_device_is_not_used(artifact: Path) -> None:
    from edgecnn.runtime import load

    _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    path = artifact / "tuning.json"
    data = json.loads(path.read_text())
    (key, rec), = data["devices"].items()
    data["devices"] = {"0123456789ab": dict(rec, device=dict(rec["device"],
                                                             cpu_model="Cortex-A76"))}
    path.write_text(json.dumps(data))
    with load(artifact) as model:
        assert Path(model.path).name == "model.onnx"
        assert "tuned elsewhere (Cortex-A76), not on this machine" in model.selection


# --- bad input: one line, exit 2, the artifact untouched ------------------------------------

def _cli(capsys, *args: str) -> tuple[int, list[str]]:  # noqa: ANN001
    from edgecnn.cli.main import main

    try:
        code = main(["tune", *args])
    except SystemExit as exc:  # argparse's own refusals (one line, exit 2)
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def test_bad_inputs_leave_the_artifact_untouched(artifact: Path, tmp_path: Path,
                                                 capsys) -> None:  # noqa: ANN001
    before = _snapshot(artifact)
    cases = [
        ((str(artifact), "--threads", "0"), "expected a positive integer"),
        ((str(artifact), "--threads", str((os.cpu_count() or 1) + 1)), "this machine's cores"),
        ((str(tmp_path / "nope"),), "no such artifact directory"),
        ((str(artifact / "model.onnx"),), "not an artifact directory (give the directory"),
    ]
    for args, words in cases:
        code, err = _cli(capsys, *args)
        assert code == 2 and len(err) == 1 and words in err[0], (args, err)
    fp32_only = tmp_path / "fp32"
    shutil.copytree(artifact, fp32_only)
    (fp32_only / "model.int8.onnx").unlink()
    code, err = _cli(capsys, str(fp32_only))
    assert code == 2 and len(err) == 1 and "no int8 model to tune" in err[0]
    partial = tmp_path / "partial"
    shutil.copytree(artifact, partial)
    (partial / "export.json").unlink()
    code, err = _cli(capsys, str(partial))
    assert code == 2 and len(err) == 1 and "partly written" in err[0]
    trt = tmp_path / "trt"
    shutil.copytree(artifact, trt)
    report = json.loads((trt / "export.json").read_text())
    report["target"]["int8_scheme"]["activations"] = "int8-symmetric"
    (trt / "export.json").write_text(json.dumps(report))
    code, err = _cli(capsys, str(trt))
    assert code == 2 and len(err) == 1 and "TensorRT tunes" in err[0]
    # damaged files: one line before any timing (a new user's trial got a traceback)
    for name, words in (("model.int8.onnx", "not a valid ONNX model"),
                        ("model.onnx", "not a valid ONNX model"),
                        ("tuning.json", "not a readable tuning record")):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(artifact, broken)
        data = (artifact / "model.onnx").read_bytes()[:500] if name != "tuning.json" else b"{"
        (broken / name).write_bytes(data)
        code, err = _cli(capsys, str(broken))
        assert code == 2 and len(err) == 1 and words in err[0], (name, err)
        assert "timing" not in " ".join(err)
    assert _snapshot(artifact) == before


def test_read_only_locked_and_interrupted_leave_it_untouched(artifact: Path) -> None:
    before = _snapshot(artifact)
    mode = artifact.stat().st_mode
    artifact.chmod(0o555)
    try:
        with pytest.raises(EdgeCNNError, match="read-only"):
            _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    finally:
        artifact.chmod(mode)
    fd = os.open(artifact / ".tune.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another tune holds it
        with pytest.raises(EdgeCNNError, match="another edgecnn tune is running"):
            _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    finally:
        os.close(fd)
    with pytest.raises(KeyboardInterrupt):
        _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}, interrupt=True))
    after = _snapshot(artifact)
    after.pop(".tune.lock", None)
    before.pop(".tune.lock", None)
    assert after == before
    assert not any(p.name.startswith(".tune-") for p in artifact.iterdir())


def test_the_real_measurement_records_what_it_timed(artifact: Path) -> None:
    """This machine's own timing: which candidate wins depends on the machine, so only the
    record's completeness and the runtime's use of it are checked."""
    from edgecnn.runtime import load
    from edgecnn.tune.run import MeasuredOnThisMachine, TuneSpec, tune

    result = tune(TuneSpec(str(artifact), threads=1, runtime="onnxruntime",
                           measure=MeasuredOnThisMachine((1, 3, 32, 32), 1, iters=8, rounds=2),
                           retries=0))
    rec = result.record
    assert set(rec["candidates_ms"]) >= {"int8 onnxruntime", "float onnxruntime"}
    assert all(v > 0 for v in rec["candidates_ms"].values()) and rec["noise_band"] >= 0
    assert rec["search"]["chosen"] in rec["search"]["candidates_profiled_ms"]
    with load(artifact) as model:
        assert Path(model.path).name == rec["file"] and model.runtime == "onnxruntime"


def test_runtime_fastest_is_the_tuning_and_bench_shows_it(artifact: Path) -> None:
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.runtime import load
    from edgecnn.timing.loop import TimingPlan

    with pytest.raises(EdgeCNNError,
                       match=r"runtime 'fastest' needs a tuning of this machine \(not tuned: "):
        load(artifact, runtime="fastest")
    with pytest.raises(EdgeCNNError,  # bench too says why, not only "nothing was measured"
                       match=r"runtime 'fastest' needs a tuning of this machine \(not tuned: "):
        run_bench([str(artifact)], BenchConfig(runtimes=("fastest",), threads=1,
                                               plan=TimingPlan(warmup=1, iters=4), rounds=1))
    fp32_only = artifact.parent / "fp32-only"  # tune would refuse it: the line must not send
    shutil.copytree(artifact, fp32_only)  # the user there
    (fp32_only / "model.int8.onnx").unlink()
    with pytest.raises(EdgeCNNError, match=r"no int8 file, so there is nothing to tune\); or name"):
        load(fp32_only, runtime="fastest")
    result = _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    with load(artifact, runtime="fastest") as model:
        assert Path(model.path).name == result.record["file"]
    records, cond = run_bench([str(artifact)], BenchConfig(
        runtimes=("onnxruntime",), precisions=("fp32", "int8"), threads=1,
        plan=TimingPlan(warmup=1, iters=4), rounds=1))
    assert {r.runtime for r in records} == {"onnxruntime", "fastest:onnxruntime/1t"}
    assert "tuned for this machine" in next(iter(cond["tuning"].values()))
    # plain `bench` (fp32 only) times what predict runs here too: one row, in its precision
    records, _ = run_bench([str(artifact)], BenchConfig(
        runtimes=("onnxruntime",), threads=1, plan=TimingPlan(warmup=1, iters=4), rounds=1))
    assert [(r.runtime, r.precision) for r in records] == [
        ("onnxruntime", "fp32"), ("fastest:onnxruntime/1t", "int8")]


def test_info_artifact_tells_layers_files_and_tunings(artifact: Path, capsys) -> None:  # noqa: ANN001
    from edgecnn.cli.main import main

    _tune(artifact, Fixed({"int8": 1.0, "float": 1.4, "placement": 0.8}))
    assert main(["info", str(artifact), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    layers = info["int8"]["layers"]
    assert layers and all(x["precision"] == "int8" for x in layers)  # every block, exported
    assert {"model.onnx", "model.int8.onnx"} <= set(info["files"])
    assert info["files"]["model.int8.onnx"]["precision"] == "int8"
    (tuned,) = info["tunings"].values()
    assert tuned["file"].startswith("model.int8.tuned-")
    assert info["this_machine"].startswith("tuned for this machine")
    assert main(["info", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "layers in int8" in out and "tuned on " in out
