"""The README never lies: its commands parse with the real CLI, and its tour runs.

Every `edgecnn ...` line in the README's bash blocks must parse with the real argument parser
(so a renamed flag fails here). The tour then runs for real, in order, in a scratch
directory, with the README's own command lines; only the sizes are cut (1 epoch where a
line gives more or none, 1 fine-tuning epoch, 20 timed calls in 2 rounds, and 32 px for a
zoo model exported or benchmarked at its default 224 px) so the suite stays fast.
`edgecnn ...` lines run in process through `edgecnn.cli.main.main`, the function the
console command calls (tests/test_bad_inputs.py runs the console command itself);
`python deploy/app.py` lines run as the program they are.

The tour is two chains, run as two tests (two workers can take them): the lines that make
or read runs/mnv1 and exports/mnv1*, in order, and the lines that stand alone. Lines parsed
but not run here, each proven elsewhere:
- the 16-point sweep: tests/test_sweep.py runs a smaller grid;
- the torchrun line: tests/test_train_ddp.py runs `python -m torch.distributed.run
  --nproc_per_node 2 -m edgecnn train lenet5` and checks it against one process;
- `edgecnn fit`: tests/test_fit.py runs it from the CLI with a budget every machine meets;
- the TensorRT-target export: tests/test_export*.py check TensorRT graphs offline, and
  tests/test_wheel.py exports for TensorRT with int8 from the installed wheel;
- the model given by import path (runs/bypath, trained, then pruned and int8-exported from
  its checkpoint): tests/test_wheel.py::test_import_path_model_trains_prunes_and_predicts
  runs that journey from the installed wheel with the user's own module.
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
from tests.conftest import ROOT, run_main

README = (ROOT / "README.md").read_text(encoding="utf-8")
# --remote lines run against a loopback sshd in tests/test_remote.py
# edgecnn fit: its outcome depends on the machine's speed against the README's budget;
# tests/test_fit.py runs it end to end with a budget every candidate meets
NOT_RUN_HERE = ("edgecnn sweep", "--target tensorrt", "make ", "bypath", "--remote",
                "edgecnn fit", "torchrun")
SHORTER = ((r"--epochs \d+", "--epochs 1"), (r"--finetune-epochs \d+", "--finetune-epochs 1"))
CHAINS = ("mnv1", "standalone")


def bash_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):  # a comment line is prose, not a command
                lines.append(line)
    return lines


def edgecnn_args(line: str) -> list[str] | None:
    words = shlex.split(line)
    if words[:1] == ["edgecnn"]:
        return words[1:]
    if words[:1] == ["torchrun"] and "-m" in words:
        return words[words.index("-m") + 2:]
    return None


def tour(chain: str) -> list[str]:
    """The tour's lines (from "## Training" on) of one chain, in README order."""
    start = README.index("## Training")
    return [line for line in bash_lines()
            if README.index(line) >= start and not any(s in line for s in NOT_RUN_HERE)
            and ("mnv1" in line) == (chain == "mnv1")]


def shortened(line: str) -> list[str]:
    for pattern, repl in SHORTER:
        line = re.sub(pattern, repl, line)
    words = shlex.split(line)
    if "train" in words and "--epochs" not in words:  # the default is 15
        words += ["--epochs", "1"]
    if words[:2] == ["edgecnn", "bench"]:
        words += ["--iters", "20", "--rounds", "2"]  # 20 timed calls per case, not 200
    if words[1:2] in (["export"], ["bench"]) and re.fullmatch(r"[a-z0-9_]+", words[2]) \
            and "--resolution" not in words:  # a zoo name: 32 px, not its 224 px default
        words += ["--resolution", "32"]
    return words


def test_every_readme_command_parses() -> None:
    parser = build_parser()
    commands = [a for a in map(edgecnn_args, bash_lines()) if a is not None]
    assert len(commands) >= 15
    for args in commands:
        parser.parse_args(args)  # exits 2 with the parser's one-line error on drift


def test_the_tour_is_its_chains() -> None:
    """Every tour line is in one chain; only the lines above are left out."""
    start = README.index("## Training")
    tour_lines = [line for line in bash_lines() if README.index(line) >= start]
    left_out = [line for line in tour_lines if any(s in line for s in NOT_RUN_HERE)]
    # sweep, TensorRT export, the two bypath lines, the four --remote lines (bench, tune,
    # predict, fit: tests/test_remote.py), fit, torchrun
    assert len(left_out) == 11, left_out
    assert sorted(sum((tour(c) for c in CHAINS), [])) == sorted(
        line for line in tour_lines if line not in left_out)
    assert len(tour("mnv1")) >= 9 and len(tour("standalone")) >= 3


@pytest.mark.parametrize("chain", CHAINS)
def test_readme_tour_runs(chain: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capfd: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.full((28, 28), 0, np.uint8)).save(tmp_path / "digit.png")
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(tmp_path / "photos" / "a.png")
    monkeypatch.chdir(tmp_path)
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(path))  # this checkout's edgecnn, from anywhere
    for line in tour(chain):
        words = shortened(line)
        if words[0] == "edgecnn":
            code, _, err = run_main(words[1:], capfd)
            assert code == 0, f"README line failed: {line}\n{err[-2000:]}"
            continue
        cmd = [sys.executable, str(ROOT / words[1]), *words[2:]]  # python deploy/app.py ...
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"README line failed: {line}\n{proc.stderr[-2000:]}"
    if chain == "mnv1":
        assert (tmp_path / "exports" / "mnv1-pruned" / "model.int8.onnx").is_file()
        assert (tmp_path / "exports" / "mnv1" / "export.json").is_file()
    else:
        assert (tmp_path / "bench.md").read_text().startswith("| model")
