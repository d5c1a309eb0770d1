"""The benchmark harness: statistics, interleaving, record format, and the real command."""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import replace

import numpy as np
import pytest

from edgecnn.bench.report import render
from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import Runner, TensorSpec
from edgecnn.timing import harness
from edgecnn.timing.harness import BenchCase, run_group
from edgecnn.timing.loop import TimingPlan
from edgecnn.timing.stats import LatencyStats
from tests.conftest import run_cli


def test_latency_stats_match_numpy_on_known_samples() -> None:
    samples = [0.001 * k for k in range(1, 101)]  # 1..100 ms
    s = LatencyStats.from_seconds(samples)
    assert s.iters == 100
    assert s.latency_ms_min == pytest.approx(1.0) and s.latency_ms_max == pytest.approx(100.0)
    assert s.latency_ms_mean == pytest.approx(50.5)
    assert s.latency_ms_p50 == pytest.approx(50.5)
    assert s.latency_ms_p90 == pytest.approx(90.1)
    assert s.latency_ms_p99 == pytest.approx(99.01)
    assert s.latency_ms_std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.throughput_ips(8) == pytest.approx(8 / 0.0505)


def test_no_samples_is_a_clear_error() -> None:
    with pytest.raises(EdgeCNNError, match="no timed runs"):
        LatencyStats.from_seconds([])


class SleepRunner(Runner):
    """A real runner whose latency we know: it sleeps, and logs when it ran."""

    name = "sleep"

    def __init__(self, seconds: float, log: list[str], tag: str, spins: bool = False) -> None:
        super().__init__(TensorSpec("input", "float32", (None, 1, 4, 4)), "cpu")
        self.seconds, self.log, self.tag, self.spins = seconds, log, tag, spins

    @property
    def spins_after_run(self) -> bool:  # as ONNX Runtime's workers do, when asked
        return self.spins

    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None: ...

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        if self.seconds:
            time.sleep(self.seconds)
        self.log.append(self.tag)
        logits = np.zeros((len(batch), 3), np.float32)
        positive = batch.reshape(len(batch), -1).mean(1) > 0  # class from each image's data
        logits[np.arange(len(batch)), positive.astype(int)] = 1
        return logits


def test_a_block_too_short_to_time_gets_more_calls() -> None:
    """TimingPlan.min_block_s: a case whose first block ran shorter than it gets longer
    blocks; a case whose blocks are long enough keeps exactly `iters` calls."""
    log: list[str] = []
    cases = [BenchCase(model="m", runtime=tag, precision="fp32", batch=1, input_shape=(1, 4, 4),
                       make_runner=lambda s=s, t=tag: SleepRunner(s, log, t))
             for tag, s in (("instant", 0.0), ("slow", 0.03))]
    # 2 calls per block: the sleeping one's last at least 60 ms (sleep never returns early),
    # the other's (no sleep) microseconds
    plan = TimingPlan(warmup=0, iters=6, settle_s=0.0, block_warmup=0, min_block_s=0.05)
    instant, slow = run_group(cases, plan, peak_gmacs=None, rounds=3)
    assert slow.iters == 6
    assert instant.iters > 6 + 2 * 10  # grown to blocks of at least ten times more calls
    # without it, blocks of iters / rounds calls whatever their length
    instant, slow = run_group(cases, replace(plan, min_block_s=0.0), peak_gmacs=None, rounds=3)
    assert instant.iters == slow.iters == 6


def test_runs_are_interleaved_in_blocks_and_latency_is_measured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    # "slow" spins after a run (as ONNX Runtime's workers do), "fast" does not
    cases = [BenchCase(model="m", runtime=tag, precision="fp32", batch=2, input_shape=(1, 4, 4),
                       macs=1000, make_runner=lambda s=s, t=tag, p=spins: SleepRunner(s, log, t, p))
             for tag, s, spins in (("fast", 0.002, False), ("slow", 0.006, True))]
    plan = TimingPlan(warmup=2, iters=20, buffers=3, settle_s=0.05, block_warmup=3)
    pauses: list[str] = []  # the tag that ran just before each settling pause
    wait = harness.wait_until_idle

    def recording_wait(limit_s: float) -> float:
        assert limit_s == plan.settle_s
        pauses.append(log[-1])
        return wait(limit_s)

    monkeypatch.setattr(harness, "wait_until_idle", recording_wait)
    records = run_group(cases, plan, peak_gmacs=1.0, rounds=4)
    # a pause after each block of the spinning runner (and after its first call, the last
    # of the loading), none after the other's: rounds fast,slow | slow,fast | fast,slow | ...
    assert pauses == ["slow"] * 5
    fast, slow = records
    assert fast.iters == slow.iters == 20
    # sleep() never returns early: the minimum is at least the sleep; the median is close
    assert 2.0 <= fast.latency_ms_min and 6.0 <= slow.latency_ms_min
    assert slow.latency_ms_p50 / fast.latency_ms_p50 == pytest.approx(3, rel=0.35)
    assert fast.throughput_ips == pytest.approx(2e3 / fast.latency_ms_mean)
    timed = log[1 + 1 + 2 + 2:]  # first calls, then warm-ups, are not timed
    blocks = [timed[i:i + 8] for i in range(0, len(timed), 8)]  # 3 untimed + 5 timed
    # alternate blocks, 4 rounds, each round starting one case later (no case always first)
    assert [b[0] for b in blocks] == ["fast", "slow", "slow", "fast"] * 2
    assert all(len(set(b)) == 1 for b in blocks)
    assert fast.efficiency_pct == pytest.approx(100 * fast.gmacs_per_s / 1.0)
    # from the p50, like the roofline's share: one statistic for both columns
    assert fast.gmacs_per_s == pytest.approx(1000 * 2 / (fast.latency_ms_p50 / 1e3) / 1e9)


def test_the_settling_pause_ends_when_the_process_is_idle() -> None:
    """The pause after a spinning runner's block lasts until this process stops using CPU,
    at most its limit: short when idle, the whole limit while a thread keeps a core busy
    (as ONNX Runtime's spinning workers do)."""
    import threading

    assert harness.wait_until_idle(5.0) < 5.0  # idle: one look or a few
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        assert harness.wait_until_idle(0.1) >= 0.1
    finally:
        stop.set()
        spinner.join()


def test_accuracy_and_agreement_on_labelled_data() -> None:
    log: list[str] = []
    x = np.concatenate([np.full((5, 1, 4, 4), -1, np.float32), np.ones((5, 1, 4, 4), np.float32)])
    y = np.array([0] * 5 + [1] * 4 + [0])  # the last label disagrees with the data
    cases = [BenchCase(model="m", runtime="sleep", precision=p, batch=4, input_shape=(1, 4, 4),
                       make_runner=lambda: SleepRunner(0, log, "s")) for p in ("fp32", "int8")]
    records = run_group(cases, TimingPlan(warmup=0, iters=3), peak_gmacs=None, rounds=1,
                        eval_data=(x, y))
    for r in records:
        assert r.accuracy_top1_pct == pytest.approx(90.0)
        assert r.agreement_top1_pct == pytest.approx(100.0)


def test_every_stage_is_told_and_the_accuracy_pass_counts_batches() -> None:
    """bench's bar says what it is doing before timing starts (loading, warm-up) and shows
    progress through each case's accuracy pass, one step per batch."""
    log: list[str] = []
    x, y = np.ones((10, 1, 4, 4), np.float32), np.ones(10, int)
    cases = [BenchCase(model="m", runtime="sleep", precision=p, batch=4, input_shape=(1, 4, 4),
                       make_runner=lambda: SleepRunner(0, log, "s")) for p in ("fp32", "int8")]
    events: list[tuple[str, int | None] | int] = []
    run_group(cases, TimingPlan(warmup=0, iters=3), peak_gmacs=None, rounds=1,
              eval_data=(x, y), progress=events.append,
              stage=lambda desc, steps: events.append((desc, steps)))
    stages = [e for e in events if isinstance(e, tuple)]
    assert stages == [("loading", 2), ("warm-up", 2), ("timing", 6),
                      ("accuracy sleep fp32 b4", 3), ("accuracy sleep int8 b4", 3)]
    for k, (_, steps) in enumerate(stages):  # each stage's steps add up to what it announced
        start = events.index(stages[k]) + 1
        end = events.index(stages[k + 1]) if k + 1 < len(stages) else len(events)
        assert sum(events[start:end]) == steps
    quiet: list[int] = []  # without `stage`, only the timed calls are counted
    run_group(cases, TimingPlan(warmup=0, iters=3), peak_gmacs=None, rounds=1,
              eval_data=(x, y), progress=quiet.append)
    assert sum(quiet) == 6


def test_record_formats_carry_units_and_every_field() -> None:
    log: list[str] = []
    case = BenchCase(model="m", runtime="sleep", precision="fp32", batch=1, input_shape=(1, 4, 4),
                     make_runner=lambda: SleepRunner(0, log, "s"))
    records = run_group([case], TimingPlan(warmup=1, iters=5), peak_gmacs=None, rounds=1)
    cond = {"cpu": "test cpu", "cpu_cores": 2, "threads": 1, "packages": {}}
    data = json.loads(render(records, "json", cond))
    rec = data["records"][0]
    for key in ("latency_ms_p50", "latency_ms_p99", "throughput_ips", "rss_mb_peak",
                "cold_start_ms", "latency_ms_std"):
        assert isinstance(rec[key], float)
    assert data["conditions"]["cpu"] == "test cpu"
    rows = list(csv.DictReader(io.StringIO(render(records, "csv", cond))))
    assert float(rows[0]["latency_ms_p50"]) == pytest.approx(rec["latency_ms_p50"])
    md = render(records, "md", cond)
    assert md.splitlines()[0].startswith("| model") and "test cpu" in md


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A small real artifact: MobileNet alpha 0.25 at 64 px with edgecnn metadata."""
    import torch

    import edgecnn
    from edgecnn.export.onnx_io import save_onnx, to_onnx_proto
    from edgecnn.export.source import init_bn_stats
    from edgecnn.metadata import ArtifactMetadata

    out = tmp_path_factory.mktemp("art") / "mobilenet-a0.25-r64"
    out.mkdir()
    torch.manual_seed(0)
    model = edgecnn.create_model("mobilenet", alpha=0.25, num_classes=10)
    init_bn_stats(model, torch.randn(8, 3, 64, 64))
    proto = to_onnx_proto(model, torch.randn(1, 3, 64, 64), dynamic_batch=True)
    meta = ArtifactMetadata(model="mobilenet", alpha=0.25, resolution=64, in_chans=3,
                            mean=(0.5,) * 3, std=(0.25,) * 3,
                            classes=tuple(str(i) for i in range(10)))
    for k, v in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    save_onnx(proto, out / "model.onnx")
    prof = edgecnn.profile_model("mobilenet", alpha=0.25, resolution=64, num_classes=10)
    (out / "export.json").write_text(json.dumps({"macs": prof.macs, "params": prof.params}))
    return out


def test_bench_command_compares_runtimes_in_one_json_report(artifact, tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(artifact), "--runtime", "onnxruntime,openvino,torch",
                   "--batch", "1,4", "--iters", "20", "--warmup", "3", "--threads", "1",
                   "--data", "mnist5k", "--format", "json", "-o", str(out), check=True)
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    records = report["records"]
    assert {(r["runtime"], r["batch"]) for r in records} == {
        (rt, b) for rt in ("onnxruntime", "openvino", "torch-eager") for b in (1, 4)}
    for r in records:
        assert r["iters"] == 20
        assert 0 < r["latency_ms_min"] <= r["latency_ms_p50"] <= r["latency_ms_p99"]
        assert r["macs"] > 0 and 0 < r["efficiency_pct"]
        assert r["baseline"] == "torch-eager fp32"
        assert 0 <= r["accuracy_top1_pct"] <= 100  # untrained: accuracy is chance level
    # all three compute the same function: their top-1 on real digits agree
    ort, ov = (next(r for r in records if r["runtime"] == rt and r["batch"] == 1)
               for rt in ("onnxruntime", "openvino"))
    assert ort["accuracy_top1_pct"] == pytest.approx(ov["accuracy_top1_pct"], abs=0.5)
    assert report["conditions"]["threads"] == 1 and report["conditions"]["peak_gmacs"] > 0


@pytest.mark.parametrize("args, message", [
    (("bench", "no/such/dir.onnx"), "no/such/dir.onnx"),
    (("bench", "mobilenet", "--runtime", "tflite"), "'tflite' is not one of"),
    (("bench", "mobilenet", "--batch", "0"), "expected a positive integer"),
    (("bench", "mobilenet", "--iters", "5", "--duration", "1"), "not allowed with"),
])
def test_bench_bad_input_is_one_line(args: tuple[str, ...], message: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1


def test_bench_int8_missing_is_explained(artifact) -> None:  # noqa: ANN001
    proc = run_cli("bench", str(artifact), "--precision", "fp32,int8", "--iters", "5")
    assert proc.returncode == 2 and "has no int8 model" in proc.stderr


def test_fixed_batch_artifact_refuses_other_batches_up_front(tmp_path) -> None:  # noqa: ANN001
    import torch

    import edgecnn
    from edgecnn.export.onnx_io import save_onnx, to_onnx_proto

    model = edgecnn.create_model("lenet5").eval()
    save_onnx(to_onnx_proto(model, torch.zeros(1, 1, 32, 32)), tmp_path / "lenet.onnx")
    proc = run_cli("bench", str(tmp_path / "lenet.onnx"), "--batch", "1,32", "--iters", "5")
    assert proc.returncode == 2
    assert "fixed batch of 1, not 32: export it with --dynamic-batch" in proc.stderr


def test_int8_eff_is_against_the_int8_peak_or_absent() -> None:
    """Without an int8 peak (the base install has no onnx to measure one), an int8 row shows
    no eff % rather than a figure against the fp32 peak."""
    from edgecnn.bench.roofline import Peaks
    from edgecnn.bench.run import add_roofline

    log: list[str] = []
    cases = [BenchCase(model="m", runtime="sleep", precision=p, batch=1, input_shape=(1, 4, 4),
                       macs=1000, make_runner=lambda: SleepRunner(0.001, log, "s"))
             for p in ("fp32", "int8")]
    for int8_peak in (None, 2.0):
        records = run_group(cases, TimingPlan(warmup=0, iters=3), peak_gmacs=1.0, rounds=1)
        add_roofline(records, [], Peaks(threads=1, fp32_gmacs=1.0, int8_gmacs=int8_peak,
                                        bandwidth_gbs=1.0), {})
        fp32, int8 = records
        assert fp32.efficiency_pct == pytest.approx(100 * fp32.gmacs_per_s / 1.0)
        assert int8.efficiency_pct == (None if int8_peak is None else
                                       pytest.approx(100 * int8.gmacs_per_s / int8_peak))
        table = render(records, "table", {"cpu": "c", "threads": 1, "packages": {}})
        assert "peak of the row's precision (-: no peak measured" in table


def test_the_exports_verdict_is_challenged_when_this_bench_misses_the_bar() -> None:
    """bench repeats the export's int8 verdict; when its own int8 figures all miss the 1.1x
    bar it says so beside it (a new user saw "worth deploying (export: 1.66x)" next to
    "measured now: 1.03x" with nothing between them)."""
    from edgecnn.bench.report import describe_conditions

    export = {"worth_deploying": True, "word": "worth deploying",
              "reason": "int8 vs fp32: onnxruntime 1.66x"}

    def footer(measured: dict[str, float]) -> str:
        text = describe_conditions({"int8_verdicts": {"art": {
            "export": export, "measured_speedup": measured}}})
        return next(ln for ln in text.splitlines() if ln.startswith("int8 verdict for art"))

    low = footer({"onnxruntime batch 1": 1.03})
    assert low.startswith("int8 verdict for art: worth deploying (export: int8 vs fp32: "
                          "onnxruntime 1.66x); measured now: onnxruntime batch 1 1.03x")
    assert low.endswith(", below the 1.1x bar here: `edgecnn tune` decides for this machine")
    assert "below" not in footer({"onnxruntime batch 1": 1.03, "openvino batch 1": 1.4})
    assert "below" not in footer({})  # nothing measured now (plain bench): nothing to say
