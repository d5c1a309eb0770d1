"""The README never lies: its commands parse with the real CLI, and its tour runs.

Every `edgecnn ...` line in the README's bash blocks must parse with the real argument parser
(so a renamed flag fails here). The tour then runs for real, in order, in a scratch
directory, with the README's own command lines; only the lengths are cut (epochs, fine-tuning
epochs, timed calls) so the suite stays fast. Two lines are parsed but not run here, each
covered elsewhere: the 16-point sweep (tests/test_sweep.py runs a smaller grid) and the
TensorRT-target export (tests/test_export*.py check TensorRT graphs offline).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.cli.main import build_parser
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
NOT_RUN_HERE = ("edgecnn sweep", "--target tensorrt", "make ")
SHORTER = ((r"--epochs \d+", "--epochs 1"), (r"--finetune-epochs \d+", "--finetune-epochs 1"))


def bash_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line:
                lines.append(line)
    return lines


def edgecnn_args(line: str) -> list[str] | None:
    words = shlex.split(line)
    if words[:1] == ["edgecnn"]:
        return words[1:]
    if words[:1] == ["torchrun"] and "-m" in words:
        return words[words.index("-m") + 2:]
    return None


def test_every_readme_command_parses() -> None:
    parser = build_parser()
    commands = [a for a in map(edgecnn_args, bash_lines()) if a is not None]
    assert len(commands) >= 15
    for args in commands:
        parser.parse_args(args)  # exits 2 with the parser's one-line error on drift


def test_readme_tour_runs(tmp_path: Path) -> None:
    Image.fromarray(np.full((28, 28), 0, np.uint8)).save(tmp_path / "digit.png")
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "photos" / "a.png")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    ran = 0
    start = README.index("## Training")
    for line in bash_lines():
        if README.index(line) < start or any(s in line for s in NOT_RUN_HERE):
            continue
        for pattern, repl in SHORTER:
            line = re.sub(pattern, repl, line)
        words = shlex.split(line)
        if words[0] == "edgecnn":
            cmd = [sys.executable, "-m", "edgecnn", *words[1:]]
        elif words[0] == "torchrun":
            cmd = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
        else:  # python deploy/app.py ...
            cmd = [sys.executable, str(ROOT / words[1]), *words[2:]]
        if words[:2] == ["edgecnn", "bench"]:
            cmd += ["--iters", "20"]  # 20 timed calls per case instead of 200
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"README line failed: {line}\n{proc.stderr[-2000:]}"
        ran += 1
    assert ran >= 12
    assert (tmp_path / "exports" / "mnv1-pruned" / "model.int8.onnx").is_file()
    assert (tmp_path / "bench.md").read_text().startswith("| model")
