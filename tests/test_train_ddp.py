"""Two processes under torchrun (gloo on the CPU) train the model one process would.

torchrun runs as a real subprocess (`python -m torch.distributed.run`). The global batch of 64
is split 32 + 32: DDP averages the two halves' gradients, which is the one-process gradient
of the whole batch up to float rounding. LeNet-5 has no BatchNorm (per-rank batch statistics
would differ from whole-batch ones) and augmentation is off (each rank draws its own crops),
so the two runs must agree to rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from edgecnn import create_model
from edgecnn.checkpoint import load_checkpoint
from tests.conftest import ROOT, run_cli

ARGS = ("train", "lenet5", "--data", "digits", "--epochs", "2", "--batch-size", "64",
        "--lr", "0.05", "--no-augment", "--seed", "5")


def test_two_gloo_processes_match_one(tmp_path: Path) -> None:
    one = tmp_path / "one"
    run_cli(*ARGS, "--out", str(one), env={"OMP_NUM_THREADS": "1"}, check=True)

    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "edgecnn", *ARGS, "--out", str(two), "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("epoch   2/2") == 1  # rank 0 alone reports
    assert "x 2 processes" in proc.stdout

    a, b = load_checkpoint(one / "last.pt"), load_checkpoint(two / "last.pt")
    for key, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], tensor, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")
    torch.manual_seed(5)  # what the runs started from: training moved far beyond rounding
    start = create_model("lenet5").state_dict()
    assert max((a["state_dict"][k] - start[k]).abs().max().item() for k in start) > 0.05

    ma = json.loads((one / "metrics.json").read_text())
    mb = json.loads((two / "metrics.json").read_text())
    assert mb["run"]["world_size"] == 2 and ma["run"]["world_size"] == 1
    for ra, rb in zip(ma["epochs"], mb["epochs"], strict=True):
        # all-reduced sums over the whole data set, whatever the split across ranks
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-4
        assert abs(ra["val_acc"] - rb["val_acc"]) <= 1 / 360  # one image at most
        assert abs(ra["val_loss"] - rb["val_loss"]) < 1e-4
    files = sorted(p.name for p in two.iterdir())
    assert files == ["best.pt", "curves.png", "last.pt", "metrics.csv", "metrics.json"]
