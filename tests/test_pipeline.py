"""`edgecnn pipeline`: the whole job on a small recipe, resumable stage by stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.pipeline.recipe import load_recipe, recipe_from_dict
from tests.conftest import ROOT, run_cli

SMALL = """\
model: mobilenet
alpha: 0.25
resolution: 32
data: digits
train: {epochs: %(epochs)d, batch_size: 64}
prune: {ratio: 0.5, finetune_epochs: 1}
export: {int8: true, calib_samples: 64}
bench: {iters: 20, threads: 1}
"""


def write_recipe(tmp: Path, epochs: int = 2) -> Path:
    path = tmp / "small.yaml"
    path.write_text(SMALL % {"epochs": epochs})
    return path


def test_default_recipe_is_valid_and_is_the_documented_job() -> None:
    recipe = load_recipe(ROOT / "export" / "pipeline.yaml")
    assert (recipe.model, recipe.alpha, recipe.data) == ("mobilenet", 0.5, "mnist5k")
    assert recipe.prune.method == "structured" and recipe.export.int8


@pytest.mark.parametrize("raw, message", [
    ({"modle": "mobilenet"}, "unknown setting 'modle'"),
    ({"train": {"epoch": 3}}, "train: unknown setting 'epoch'"),
    ({"alpha": -1}, "alpha must be a positive number"),
    ({"prune": {"ratio": 1.5}}, "prune ratio must be in (0, 1)"),
    ({"export": {"target": "cpu-x68"}}, "unknown target 'cpu-x68'"),
    ({"export": {"int8": True, "target": "jetson-nano", "calib_samples": 0}},
     "calibration samples must be"),
    ({"model": "mobilenett"}, "unknown model 'mobilenett'"),
    ({"model": "tests.no_such_module:net"}, "does not import"),
    ({"bench": {"runtimes": ["tflite"]}}, "'tflite' is not one of"),
])
def test_bad_recipes_are_refused_before_any_work(raw: dict, message: str) -> None:
    with pytest.raises(EdgeCNNError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe_from_dict(raw)


def _run_until(cmd: list[str], marker: str, timeout: float = 300) -> list[str]:
    """Start the pipeline, SIGKILL it as soon as it logs `marker` (a stage starting);
    returns what it logged before."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    log = []
    for line in proc.stderr:
        if line.startswith(marker):
            time.sleep(0.5)  # well inside the stage
            proc.send_signal(signal.SIGKILL)
            break
        log.append(line)
        assert time.monotonic() < deadline
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the pipeline never reached {marker!r}"
    return log


def test_pipeline_killed_in_every_stage_resumes_finishes_then_skips_it_all(
        tmp_path: Path) -> None:
    """One run of the small recipe, killed in each stage in turn: in training after its
    first epoch, as export starts, as the benchmark starts. Each restart goes on from where
    the last one stopped; the finished run has every stage's output; one more run redoes
    nothing. (One run for all of it: each stage costs as much as a whole run's share.)"""
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path, epochs=2)
    cmd = [sys.executable, "-m", "edgecnn", "pipeline", str(recipe), "--out", str(out)]

    # 1. killed during training, once the first epoch is saved
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 240
    while not (out / "train" / "last.pt").exists():
        assert proc.poll() is None, "pipeline ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "artifact").exists() and not (out / "bench.json").exists()

    # 2. restarted: training resumes from last.pt; killed as export starts
    log = _run_until(cmd, "export:")
    assert any(line.startswith("train: resuming") for line in log), log
    # the epoch it trained is a line of the log (no terminal here: no bar either)
    assert any(line.startswith("train: epoch   2/2") for line in log), log
    assert not (out / "artifact").exists(), "a killed export left a half-written artifact"

    # 3. restarted: training is done, export runs again; killed as the benchmark starts
    log = _run_until(cmd, "bench:")
    assert any(line.startswith("train: up to date") for line in log), log
    assert (out / "artifact" / "export.json").is_file()
    assert not (out / "bench.json").exists(), "a killed benchmark left a report"

    # 4. restarted: only the benchmark runs
    done = run_cli("pipeline", str(recipe), "--out", str(out), check=True)
    assert "train: up to date" in done.stderr and "export: up to date" in done.stderr
    metrics = json.loads((out / "train" / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2  # every epoch once: nothing lost, nothing repeated
    assert [p.name for p in out.rglob("*") if ".tmp" in p.name] == []
    table = done.stdout.splitlines()
    variants = [line.split("  ")[0] for line in table[2:7]]
    assert variants == ["PyTorch eager fp32 (unpruned)", "ONNX Runtime fp32",
                        "ONNX Runtime int8", "OpenVINO fp32", "OpenVINO int8"]
    bench = json.loads((out / "bench.json").read_text())
    assert len(bench["records"]) == 5
    recs = {(r["runtime"], r["precision"]): r for r in bench["records"]}
    # the pruned artifact has about half the MACs of the trained model
    assert recs[("onnxruntime", "fp32")]["macs"] < 0.6 * recs[("torch-eager", "fp32")]["macs"]
    # ONNX Runtime and OpenVINO run the same fp32 file: same predictions on real digits
    assert recs[("openvino", "fp32")]["agreement_top1_pct"] == pytest.approx(100, abs=0.3)
    assert recs[("onnxruntime", "fp32")]["accuracy_top1_pct"] == pytest.approx(
        recs[("openvino", "fp32")]["accuracy_top1_pct"], abs=0.3)
    report = (out / "report.md").read_text()
    assert "int8 accuracy guard" in report and "![latency](latency.png)" in report
    assert (out / "latency.png").stat().st_size > 0

    # 5. once more: every stage up to date, nothing redone
    again = run_cli("pipeline", str(recipe), "--out", str(out), check=True)
    assert all(f"{stage}: up to date" in again.stderr for stage in ("train", "export", "bench"))


def _bench(fp32_ms: float, int8_ms: float) -> dict:
    return {"conditions": {"threads": 2}, "records": [
        {"runtime": "onnxruntime", "precision": "fp32", "latency_ms_p50": fp32_ms},
        {"runtime": "onnxruntime", "precision": "int8", "latency_ms_p50": int8_ms},
        {"runtime": "openvino", "precision": "int8", "latency_ms_p50": 0.01}]}


def test_the_summary_says_what_pruning_and_int8_bought_in_a_sentence_each() -> None:
    """From the benchmark's own ONNX Runtime rows (not OpenVINO's, not the export's timing),
    at the bench's thread count: what a first-time user reads under the table."""
    from edgecnn.pipeline.recipe import Recipe
    from edgecnn.pipeline.report import verdicts

    pruned = {"pruning": {"top1_before": 98.0, "top1_after": 96.9, "macs_before": 3_000_000,
                          "macs_after": 1_500_000}, "int8": {"written": True}}
    slow = verdicts(_bench(0.143, 0.144), pruned, Recipe())
    assert slow[0] == ("Pruning removed 50% of the multiply-adds and cost 1.10 points of "
                       "held-out top-1 (98.00% -> 96.90%), more than the 1 point it may.")
    assert slow[1].startswith("int8 does not pay in ONNX Runtime at 2 threads on this CPU: "
                              "0.99x the speed of fp32") and "deploy model.onnx" in slow[1]
    kept = {**pruned, "pruning": {**pruned["pruning"], "top1_after": 97.5}}
    fast = verdicts(_bench(0.300, 0.150), kept, Recipe())
    assert fast[0].endswith("cost 0.50 points of held-out top-1 (98.00% -> 97.50%).")
    assert fast[1] == ("int8 runs 2.00x as fast as fp32 in ONNX Runtime at 2 threads on this "
                       "CPU (0.150 vs 0.300 ms).")
    gone = verdicts(_bench(0.3, 0.15), {"int8": {"written": False, "reason": "no block ran "
                                                 "faster in int8"}}, Recipe())
    assert gone == ["int8 not produced: no block ran faster in int8."]
    # a busy machine's benchmark gives no verdict (a new user's run said both "worth
    # deploying, 1.45x" in the export and "does not pay, 0.77x" here, every row NOISY)
    busy = _bench(0.100, 0.130)
    busy["conditions"].update(before={"load_1min": 2.9}, cpu_cores=2)
    said = verdicts(busy, {**kept, "int8": {"written": True, "verdict": {
        "speedups": {"onnxruntime": 1.45}}}}, Recipe())
    assert said[1] == ("int8 ran 0.77x the speed of fp32 in ONNX Runtime at 2 threads on this "
                       "CPU (0.130 vs 0.100 ms), but the benchmark was noisy (load average 2.90 "
                       "before timing, above the 2 cores), so it cannot tell whether int8 pays "
                       "here (the export timed 1.45x); `edgecnn bench` on an idle machine "
                       "times it again.")
    # noise in another row (PyTorch eager's) says nothing about these two: a verdict (a run
    # on a 2-vCPU Xeon withheld it for "torch-eager fp32 b1 timed 6.0% apart")
    other = _bench(0.300, 0.150)
    other["records"] += [{"runtime": "torch-eager", "precision": "fp32", "model": "m",
                          "batch": 1, "latency_ms_p50": 2.3, "noise_pct": 6.0}]
    other["conditions"]["noisy"] = ["m torch-eager fp32 b1 timed 6.0% apart between the "
                                    "halves of its run (noise band over 5%)"]  # as bench says
    assert verdicts(other, kept, Recipe())[1].startswith("int8 runs 2.00x as fast")
    own = _bench(0.300, 0.150)
    own["records"][1]["noise_pct"] = 7.5
    assert "ONNX Runtime int8 timed 7.5% apart" in verdicts(own, kept, Recipe())[1]
