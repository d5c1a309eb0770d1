"""`edgecnn fit` (issue 22): the decision, successive halving, resume and each bad input's
one line (the latency table: tests/test_fit_latency.py).

Latency is injected (`WeightsMeasure`: a graph's time is a fixed call cost plus its conv and
linear weights, so layers add up exactly as the predictor assumes) wherever a decision
depends on it, so no test branches on this machine's speed; the one real end-to-end run
uses a budget every candidate meets on any CPU (1 s), so its outcome does not either.
Training is real (digits, MobileNet 0.25 at 32 px, one epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.fit.choose import Scored, choose
from edgecnn.fit.executor import LocalExecutor, run_job
from edgecnn.fit.run import FitSpec, fit
from edgecnn.fit.search import rung_epochs


class WeightsMeasure:
    """ms = 0.01 + conv/linear weight elements / 1e5: additive over layers, like the table."""

    def __init__(self) -> None:
        self.calls = 0

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        self.calls += 1
        out = {}
        for name, path in files.items():
            proto = onnx.load(str(path))
            inits = {t.name: t for t in proto.graph.initializer}
            weights = sum(int(np.prod(inits[n.input[1]].dims)) for n in proto.graph.node
                          if n.op_type in ("Conv", "Gemm") and n.input[1] in inits)
            out[name] = 0.01 + weights / 1e5
        return out


class CountingExecutor(LocalExecutor):
    """Trains in this process (real training, no child start-up) and counts the jobs;
    `stop_after` raises KeyboardInterrupt at that job, as a kill would end the run."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.jobs: list[str] = []
        self.stop_after = stop_after

    def train(self, job, *, timeout_s=None):  # noqa: ANN001, ANN201
        if self.stop_after is not None and len(self.jobs) == self.stop_after:
            raise KeyboardInterrupt
        import torch

        self.jobs.append(Path(job.out).name)  # runs/KEY: one run per candidate
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core per job, as a Ray task gets: the other is busy
        try:
            return run_job(job, log=lambda line: None)
        finally:
            torch.set_num_threads(threads)


class NeverInTime(LocalExecutor):
    """A job that never finishes within a time limit."""

    def train(self, job, *, timeout_s=None):  # noqa: ANN001, ANN201
        assert timeout_s is not None
        return None


def _spec(tmp_path: Path, **kw) -> FitSpec:  # noqa: ANN003
    base = dict(family="mobilenet", data="digits", budget_ms=50.0, out=str(tmp_path / "fit"),
                threads=1, alphas=(0.25,), resolutions=(32,), epochs=1,
                measure=WeightsMeasure())
    base.update(kw)
    return FitSpec(**base)


# --- the decision ---------------------------------------------------------------------------

def test_choose_most_accurate_within_budget_and_refusals() -> None:
    rows = [Scored("a", 0.5, "measured", 90.0), Scored("b", 0.9, "measured", 95.0),
            Scored("c", 1.5, "measured", 99.0), Scored("d", 0.4, "predicted", None)]
    d = choose(rows, 1.0)
    assert (d.index, d.bound) == (1, True)
    assert choose(rows, 2.0).index == 2 and not choose(rows, 2.0).bound
    assert choose(rows, 1.4).bound  # c (1.5 ms) misses it, though b is chosen either way
    # ties on accuracy: the faster one
    assert choose([Scored("x", 0.8, "measured", 90.0), Scored("y", 0.6, "measured", 90.0)],
                  1.0).index == 1
    with pytest.raises(EdgeCNNError, match=r"^no candidate meets 0.3 ms: the fastest "
                       r"measured, a, takes 0.500 ms$"):
        choose(rows, 0.3)


def test_choose_keeps_the_noise_band_as_a_margin() -> None:
    """0.3 ms timed 0.29 with a 5% band could be 0.305 when timed again: not chosen."""
    rows = [Scored("a", 0.20, "measured", 90.0), Scored("b", 0.29, "measured", 95.0)]
    assert choose(rows, 0.3).index == 1
    d = choose(rows, 0.3, noise=0.05)
    assert d.index == 0 and d.reason == (
        "a: 90.00% top-1 at 0.200 ms (measured) within 0.3 ms with the noise band (5.0%) to "
        "spare; b (95.00%, 0.290 ms) meets it only inside the noise band")
    with pytest.raises(EdgeCNNError, match=r"^no candidate meets 0.2 ms with the noise band "
                       r"\(5.0%\) to spare: the fastest measured, a, takes 0.200 ms$"):
        choose(rows, 0.2, noise=0.05)


class NoisyMeasure:
    """Every file 1 ms, but the file timed a second time in a group `apart` slower, for
    the first `noisy` groups."""

    def __init__(self, apart: float, noisy: int) -> None:
        self.apart, self.noisy, self.calls = apart, noisy, 0

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        from edgecnn.fit.run import AGAIN

        self.calls += 1
        slow = self.calls <= self.noisy
        return {k: 1.0 + (self.apart if k == AGAIN and slow else 0.0) for k in files}


def test_the_noise_band_is_timed_again_then_recorded_inconclusive() -> None:
    from edgecnn.fit.run import RETRIES, _time_with_band

    files = {"near": Path("a.onnx"), "far": Path("b.onnx")}
    latency = {"near": 0.9, "far": 0.3}
    calm = NoisyMeasure(0.2, noisy=1)  # one busy group makes the attempt's band wide
    ms, noise = _time_with_band(files, latency, 1.0, calm, log=lambda line: None)
    assert calm.calls == 4 and ms == {"near": 1.0, "far": 1.0}
    assert noise == {"band": 0.0, "timed_twice": "near", "conclusive": True}
    busy = NoisyMeasure(0.2, noisy=99)
    lines: list[str] = []
    _, noise = _time_with_band(files, latency, 1.0, busy, log=lines.append)
    assert busy.calls == 2 * (1 + RETRIES)  # each attempt: the faster of two groups
    assert noise == {"band": 0.2, "timed_twice": "near", "conclusive": False}
    assert "inconclusive" in lines[-1]


def test_rung_epochs_sum_to_the_schedule() -> None:
    for epochs in range(1, 20):
        assert sum(rung_epochs(epochs)) == epochs and min(rung_epochs(epochs)) >= 1


# --- the whole fit --------------------------------------------------------------------------

def test_int8_is_exported_in_the_measuring_devices_scheme() -> None:
    from edgecnn.fit.latency import int8_target

    assert int8_target({"arch": "aarch64", "isa": ["asimd", "asimddp"]}) == "cpu-arm"
    assert int8_target({"arch": "x86_64", "isa": ["avx2", "fma"]}) == "cpu-x86"
    assert int8_target({"arch": "x86_64", "isa": ["avx2", "avx512_vnni"]}) == "cpu-x86-vnni"
    assert int8_target({"arch": "riscv64", "isa": []}) == "cpu-x86"  # 7-bit: safe anywhere


def test_fit_resumes_after_a_kill_without_retraining(tmp_path: Path) -> None:
    # 0.25 (about 2 ms by weights) meets 5 ms, 0.5 (about 8 ms) narrowly misses it: pruned
    spec = _spec(tmp_path, alphas=(0.25, 0.5), budget_ms=5.0)
    with pytest.raises(KeyboardInterrupt):
        fit(executor_override(spec, CountingExecutor(stop_after=1)))
    first = sorted(p.name for p in (tmp_path / "fit" / "candidates").iterdir())
    assert first == ["mobilenet-a0.25-r32-p0-fp32.rung0.json"]
    again = CountingExecutor()
    measure = WeightsMeasure()
    result = fit(FitSpec(**{**spec.__dict__, "executor": again, "measure": measure}))
    assert again.jobs == ["mobilenet-a0.5-r32-p0-fp32"]  # the finished one was not redone
    rec = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert rec == result.record
    assert set(rec) >= {"budget_ms", "threads", "device", "candidates", "chosen", "artifact"}
    for row in rec["candidates"]:
        assert set(row) >= {"alpha", "resolution", "prune", "precision", "latency_ms",
                            "latency_source", "top1", "meets_budget"}
    chosen = rec["candidates"][rec["chosen"]]
    meeting = [r for r in rec["candidates"] if r["top1"] is not None and r["meets_budget"]]
    assert chosen["top1"] == max(r["top1"] for r in meeting)
    assert chosen["latency_source"] == "measured" and result.bound
    pruned = [r for r in rec["candidates"] if r["prune"]]
    assert len(pruned) == 1 and pruned[0]["alpha"] == 0.5 and pruned[0]["meets_budget"]
    assert pruned[0]["latency_ms"] <= 5.0 * 0.95 and pruned[0]["top1"] is not None
    search = json.loads((tmp_path / "fit" / "netadapt" / "5ms" / "result.json").read_text())
    # the smallest ratio timed that meets the budget with its margin, not a larger one
    ok = sorted(float(r) for r, ms in search["search_ms"].items() if ms <= 5.0 * 0.95)
    assert pruned[0]["prune"] == ok[0]
    assert (Path(rec["artifact"]) / "model.onnx").is_file()
    assert (tmp_path / "fit" / "report.md").is_file() and (tmp_path / "fit" / "pareto.png").is_file()
    # a third run, for another budget, redoes no training and no latency table
    third, measure = CountingExecutor(), WeightsMeasure()
    rec = fit(FitSpec(**{**spec.__dict__, "executor": third, "measure": measure,
                         "budget_ms": 40.0})).record
    assert third.jobs == [] and rec["budget_ms"] == 40.0
    assert measure.calls == 3  # the trained candidates side by side (twice), the shipped one


def executor_override(spec: FitSpec, executor: object) -> FitSpec:
    return FitSpec(**{**spec.__dict__, "executor": executor})


def test_fit_cli_end_to_end_budget_that_does_not_bind(tmp_path: Path, capsys,  # noqa: ANN001
                                                      monkeypatch) -> None:  # noqa: ANN001
    from edgecnn.cli.main import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child trains on one of the two cores
    out = tmp_path / "cli"
    rc = main(["fit", "mobilenet", "--data", "digits", "--latency-ms", "1000", "--alphas",
               "0.25", "--resolutions", "32", "--epochs", "1", "--threads", "1", "-o",
               str(out), "--no-progress", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "fit.json").read_text())
    assert printed["bound"] is False and printed["budget_ms"] == 1000
    chosen = printed["candidates"][printed["chosen"]]
    assert chosen["latency_source"] == "measured" and chosen["meets_budget"]
    assert (out / "artifact" / "export.json").is_file()


# --- bad input: one line each ---------------------------------------------------------------

def _one_line(capsys, argv: list[str]) -> str:  # noqa: ANN001
    from edgecnn.cli.main import main

    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    assert rc != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_family_without_multiplier_lists_those_with_one(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    err = _one_line(capsys, ["fit", "resnet18", "--data", "digits", "--latency-ms", "1", "-o",
                             str(tmp_path / "x")])
    assert "resnet18 has no width multiplier" in err and "mobilenet_v2" in err
    assert not (tmp_path / "x").exists()


def test_threads_out_of_range(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    import os

    base = ["fit", "mobilenet", "--data", "digits", "--latency-ms", "1", "-o",
            str(tmp_path / "x")]
    assert "--threads" in _one_line(capsys, [*base, "--threads", "0"])
    assert f"1..{os.cpu_count()}" in _one_line(capsys, [*base, "--threads",
                                                        str((os.cpu_count() or 1) + 1)])
    assert not (tmp_path / "x").exists()


def test_data_with_one_class(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from PIL import Image

    for split in ("train", "val"):
        folder = tmp_path / "one" / split / "cat"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(folder / f"{i}.png")
    err = _one_line(capsys, ["fit", "mobilenet", "--data", f"imagefolder:{tmp_path / 'one'}",
                             "--latency-ms", "1", "-o", str(tmp_path / "x")])
    assert "1 class" in err
    assert not (tmp_path / "x").exists()


def test_budget_below_every_candidate_names_the_fastest(tmp_path: Path) -> None:
    spec = _spec(tmp_path, alphas=(0.25, 0.5), budget_ms=0.001,
                 executor=CountingExecutor(stop_after=0))
    with pytest.raises(EdgeCNNError, match=r"no candidate meets 0.001 ms: the fastest, "
                       r"mobilenet a0.25 r32 fp32, takes \d+\.\d{3} ms \(measured\)"):
        fit(spec)
    assert not (tmp_path / "fit" / "fit.json").exists()


def test_time_budget_too_short_for_one_candidate(tmp_path: Path) -> None:
    with pytest.raises(EdgeCNNError, match="--time-budget is too short to train one candidate"):
        fit(_spec(tmp_path, time_budget_min=0.5, executor=NeverInTime()))
    assert not (tmp_path / "fit" / "fit.json").exists()


def test_another_fits_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fit").mkdir()
    (tmp_path / "fit" / "fit-config.json").write_text(json.dumps({"family": "other"}))
    with pytest.raises(EdgeCNNError, match=r"holds another fit .*--force"):
        fit(_spec(tmp_path, executor=NeverInTime()))
    assert json.loads((tmp_path / "fit" / "fit-config.json").read_text()) == {"family": "other"}


class DeviceMeasure(WeightsMeasure):
    """A device's measure (as remote/measure.py's): its own cores and identity."""

    threads = 512  # more cores than a test machine has: the device's to allow

    def identity(self) -> dict:
        return {"cpu_model": "Cortex-A76", "arch": "aarch64", "cores": 4, "isa": ["asimddp"],
                "board": "Raspberry Pi 5 Model B", "remote": "pi5"}


def test_a_device_measures_with_its_own_threads_and_keeps_its_own_table(
        tmp_path: Path) -> None:
    """A fit measured on a device takes its threads as the device allows them, and its DIR
    (whose latency table is that device's) is not reused by a fit measured elsewhere."""
    with pytest.raises(EdgeCNNError, match="no candidate meets 0.001 ms"):  # not --threads
        fit(_spec(tmp_path, budget_ms=0.001, threads=512, measure=DeviceMeasure()))
    with pytest.raises(EdgeCNNError, match="--threads must be 1"):  # this machine's check
        fit(_spec(tmp_path, budget_ms=0.001, threads=512, measure=WeightsMeasure()))
    with pytest.raises(EdgeCNNError, match=r"holds another fit \(device, threads differ\)"):
        fit(_spec(tmp_path, budget_ms=0.001, threads=None, measure=WeightsMeasure()))


class Int8Measure(WeightsMeasure):
    """WeightsMeasure, int8 graphs (Q/DQ) at 0.6x their weights' fp32 time; tune's decision
    made on fixed timings (every block int8 0.6 ms, float 1.0, the placement 0.7)."""

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        self.calls += 1
        out = {}
        for name, path in files.items():
            proto = onnx.load(str(path))
            weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer
                          if len(t.dims) in (2, 4))
            int8 = any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
            out[name] = (0.6 if int8 else 1.0) * (0.01 + weights / 1e5)
        return out

    def tune(self, artifact: Path, log) -> None:  # noqa: ANN001
        from edgecnn.tune.run import TuneSpec, tune
        from tests.test_tune import Fixed

        tune(TuneSpec(str(artifact), threads=1, runtime="onnxruntime",
                      measure=Fixed({"int8": 0.6, "float": 1.0, "placement": 0.7})), log=log)


def test_int8_candidates_are_measured_exported_tuned_and_chosen(tmp_path: Path) -> None:
    """--precision fp32,int8: the grid's int8 latency is measured, the trained network is
    exported with int8 in this machine's recipe and tuned, and its row competes; int8 alone
    has only int8 rows and prunes nothing."""
    from edgecnn.fit.latency import int8_target
    from edgecnn.host import device

    spec = _spec(tmp_path, precisions=("fp32", "int8"), executor=CountingExecutor(),
                 measure=Int8Measure())
    rec = fit(spec).record
    int8 = [r for r in rec["candidates"] if r["precision"] == "int8"]
    assert len(int8) == 1 and int8[0]["top1"] is not None and int8[0]["runtime"]
    assert int8[0]["latency_source"] == "measured" and int8[0]["tuned"] == "model.int8.onnx"
    assert "int8" in rec["latency_table"]  # the measured point, in int8 too
    report = json.loads((Path(int8[0]["artifact"]) / "export.json").read_text())
    assert report["target"]["name"] == int8_target(device())
    best = max((r for r in rec["candidates"] if r["top1"] is not None),
               key=lambda r: (r["top1"], -r["latency_ms"]))
    assert rec["candidates"][rec["chosen"]]["name"] == best["name"]
    only = fit(_spec(tmp_path, out=str(tmp_path / "only"), precisions=("int8",),
                     executor=CountingExecutor(), measure=Int8Measure())).record
    assert {r["precision"] for r in only["candidates"]} == {"int8"}
    assert not (tmp_path / "only" / "netadapt").exists()


def test_user_model_by_import_path_with_width_mult(tmp_path: Path) -> None:
    from torch import nn

    from edgecnn.fit.space import check_family
    from edgecnn.registry import create_model

    name = "tests.usermodels:scaled_cnn"
    assert check_family(name) == name
    convs = [m for m in create_model(name, alpha=0.5, num_classes=10).modules()
             if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 8  # width_mult reached the callable
    with pytest.raises(EdgeCNNError, match=r"the fastest, tests.usermodels:scaled_cnn a0.5 "
                       r"r16 fp32"):
        fit(_spec(tmp_path, family=name, alphas=(0.5, 1.0), resolutions=(16,),
                  budget_ms=0.001, executor=NeverInTime()))
    with pytest.raises(EdgeCNNError, match="small_cnn has no width multiplier"):
        check_family("tests.usermodels:small_cnn")


def test_a_candidates_failure_in_its_process_is_one_line(tmp_path: Path) -> None:
    from edgecnn.fit.executor import TrainJob

    job = TrainJob("mobilenet", 0.25, 8, "digits", 1, str(tmp_path / "cand" / "rung0"))
    with pytest.raises(EdgeCNNError, match=r"^training cand failed: mobilenet needs a "
                       r"resolution of at least 32, got 8$"):
        LocalExecutor().train(job)


def test_a_rung_goes_on_along_one_schedule(tmp_path: Path) -> None:
    """Rung 1 resumes rung 0's run: its learning rates are those of one 3-epoch schedule,
    as a run never split would have them (not a second schedule restarting at the full
    rate), and the weights are the same."""
    import torch

    from edgecnn.fit.executor import TrainJob

    split = TrainJob("mobilenet", 0.25, 32, "digits", 3, str(tmp_path / "split"), stop_after=1)
    CountingExecutor().train(split)
    CountingExecutor().train(TrainJob(**{**split.__dict__, "stop_after": 3}))
    whole = TrainJob("mobilenet", 0.25, 32, "digits", 3, str(tmp_path / "whole"))
    CountingExecutor().train(whole)
    lrs = [[e["lr"] for e in json.loads((tmp_path / d / "metrics.json").read_text())["epochs"]]
           for d in ("split", "whole")]
    assert len(lrs[0]) == 3 and lrs[0] == lrs[1] and lrs[0][0] > lrs[0][1] > lrs[0][2]
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=False)["state_dict"]
            for d in ("split", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)
