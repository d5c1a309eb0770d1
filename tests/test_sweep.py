"""`edgecnn sweep`: the alpha x resolution grid, end to end on small points."""

from __future__ import annotations

import json

import pytest

from edgecnn.bench.sweep import pareto_front
from tests.conftest import run_cli


def test_pareto_front_keeps_only_undominated_points() -> None:
    pts = [(1.0, 90.0), (2.0, 89.0), (2.0, 95.0), (3.0, 94.0), (4.0, 97.0), (0.5, 80.0)]
    assert pareto_front(pts) == [(0.5, 80.0), (1.0, 90.0), (2.0, 95.0), (4.0, 97.0)]


def test_trained_sweep_writes_table_plots_and_grows_with_alpha(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "sweep"
    first = run_cli("sweep", "mobilenet", "--alpha", "0.25,0.5", "--resolution", "32",
                    "--precision", "fp32,int8", "--train", "--data", "digits", "--epochs", "1",
                    "--iters", "10", "--threads", "1", "-o", str(out), check=True)
    # each stage of a point's export is said as it starts (a ticker's stage on a terminal)
    for stage in ("stage: fp32 ONNX", "stage: int8 (calibration"):
        assert f"mobilenet-a0.25-r32: export: {stage}" in first.stderr, first.stderr
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert {(r["alpha"], r["precision"]) for r in rows} == {
        (a, p) for a in (0.25, 0.5) for p in ("fp32", "int8")}
    small, large = (next(r for r in rows if r["alpha"] == a and r["precision"] == "fp32")
                    for a in (0.25, 0.5))
    assert small["params"] < large["params"] and small["macs"] < large["macs"]
    # accuracy measured in ONNX Runtime equals what training measured in PyTorch on the
    # same held-out split (one epoch is not enough to learn much: this checks the plumbing)
    for a, r in ((0.25, small), (0.5, large)):
        metrics = json.loads((out / f"mobilenet-a{a:g}-r32" / "train" / "metrics.json").read_text())
        assert r["accuracy_top1_pct"] == pytest.approx(100 * metrics["best_val_acc"], abs=0.6)
    for name in ("sweep.md", "latency_vs_macs.png", "accuracy_vs_latency.png"):
        assert (out / name).stat().st_size > 0
    # a second run reuses every point's artifact instead of training again
    again = run_cli("sweep", "mobilenet", "--alpha", "0.25,0.5", "--resolution", "32",
                    "--precision", "fp32,int8", "--train", "--data", "digits", "--epochs", "1",
                    "--iters", "5", "--threads", "1", "-o", str(out), check=True)
    assert again.stderr.count("reusing") == 2


def test_sweep_train_without_data_is_one_line(tmp_path) -> None:  # noqa: ANN001
    proc = run_cli("sweep", "mobilenet", "--alpha", "0.5", "--resolution", "32", "--train",
                   "-o", str(tmp_path / "s"))
    assert proc.returncode == 2 and "--train needs --data" in proc.stderr
