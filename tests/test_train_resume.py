"""Kill a real training process with SIGKILL, resume it, and get the same weights.

A seeded CPU run that was killed right after its first checkpoint and then resumed must end
bit for bit where an uninterrupted run ends (torch.equal on every tensor): batch order,
augmentation and dropout come from per-epoch seeds, not from RNG state that a kill loses.
MobileNet alpha 0.25 (BatchNorm, dropout, augmentation) at 32 px on the digits.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from edgecnn.checkpoint import load_checkpoint
from edgecnn.cli.main import main
from tests.conftest import ROOT, run_cli

ARGS = ("train", "mobilenet", "--alpha", "0.25", "--resolution", "32", "--data", "digits",
        "--epochs", "2", "--batch-size", "128", "--lr", "0.05", "--seed", "7")
TIMING = ("train_seconds", "train_images_per_s", "eval_seconds", "bn_seconds")


def _metrics(out: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_sigkill_then_resume_gives_the_same_weights(tmp_path: Path) -> None:
    env = {"OMP_NUM_THREADS": "1"}  # the same kernels in both runs
    straight = tmp_path / "straight"
    run_cli(*ARGS, "--out", str(straight), env=env, check=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", *ARGS, "--out", str(killed)],
                            cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "last.pt").exists():  # the first epoch's commit point
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert load_checkpoint(killed / "last.pt")["epoch"] == 1  # it really was cut short

    resumed = run_cli(*ARGS, "--out", str(killed), "--resume", env=env, check=True)
    assert "resuming" in resumed.stdout

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert _metrics(straight) == _metrics(killed)
    assert load_checkpoint(straight / "best.pt")["epoch"] == load_checkpoint(
        killed / "best.pt")["epoch"]
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")]


def test_resume_rebuilds_what_a_kill_after_last_pt_left_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    args = ["train", "lenet5", "--data", "digits", "--epochs", "2", "--out", str(out)]
    assert main(args) == 0
    metrics = (out / "metrics.csv").read_text()
    best_epoch = load_checkpoint(out / "best.pt")["epoch"]
    # A kill between last.pt and the files written after it.
    for name in ("metrics.csv", "metrics.json", "curves.png"):
        (out / name).unlink()
    if best_epoch == 2:
        (out / "best.pt").unlink()
    assert main([*args, "--resume"]) == 0
    assert (out / "metrics.csv").read_text() == metrics
    assert load_checkpoint(out / "best.pt")["epoch"] == best_epoch
    assert (out / "curves.png").exists()

    # Resuming asks for the run as it was started.
    assert main([*args, "--resume", "--lr", "0.5"]) == 2
    assert "holds a run with lr=0.1, not 0.5" in capsys.readouterr().err
    # Nothing to resume: a fresh run starts (a kill before the first epoch ended).
    fresh = tmp_path / "fresh"
    assert main(["train", "lenet5", "--data", "digits", "--epochs", "1", "--out", str(fresh),
                 "--resume"]) == 0
    assert "starting it" in capsys.readouterr().out
    assert load_checkpoint(fresh / "last.pt")["epoch"] == 1
