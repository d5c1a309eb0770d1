"""What the CLI says at the moments a user needs it: a resolution far above the data's, a
--resume that changes --epochs, Ctrl-C during training, a run directory where a checkpoint
was expected. A digits lenet5 run shared by the tests, trained by the real command; the
commands after it run in process through main() (tests/conftest.py run_main), Ctrl-C as the
real command, which is what receives the signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, default_sigint, run_cli, run_main


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("msg") / "run"
    proc = run_cli("train", "lenet5", "--data", "digits", "--resolution", "40", "--epochs", "1",
                   "--batch-size", "64", "--device", "cpu", "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-600:]
    return out, proc


def test_a_resolution_far_above_the_data_says_so_with_an_epoch_estimate(run) -> None:
    _, proc = run
    lines = [line for line in proc.stdout.splitlines() if "native" in line]
    assert len(lines) == 1, proc.stdout
    assert "training at 40 px, 5x digits's native 8 px: about" in lines[0]
    assert "s per epoch" in lines[0]


def test_resume_with_other_epochs_explains_how_to_extend(run, capfd) -> None:
    out, _ = run
    code, _, err = run_main(["train", "lenet5", "--data", "digits", "--resolution", "40",
                             "--epochs", "3", "--device", "cpu", "-o", str(out), "--resume"],
                            capfd)
    assert code == 2
    assert "planned for 1 epochs" in err and f"--init {out}/best.pt" in err


def test_eval_and_export_take_a_run_directory(run, tmp_path: Path, capfd) -> None:
    out, _ = run
    code, stdout, err = run_main(["eval", str(out), "--no-pictures", "--json"], capfd)
    assert code == 0, err
    assert json.loads(stdout)["checkpoint"] == str(out / "best.pt")
    code, stdout, err = run_main(["export", str(out), "-o", str(tmp_path / "art"), "--json",
                                  "--opset", "18"], capfd)
    assert code == 0, err
    assert f"exporting the run's best checkpoint, {out / 'best.pt'}" in err
    assert json.loads(stdout)["checkpoint"] == str(out / "best.pt")


def test_ctrl_c_before_the_first_epoch_says_nothing_was_saved(tmp_path: Path) -> None:
    """No epoch finished: no last.pt to resume from, and the line must not promise one."""
    out = tmp_path / "early"
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "train", "mobilenet", "--alpha",
                             "0.5", "--data", "mnist5k", "--resolution", "32", "--epochs", "5",
                             "--device", "cpu", "-o", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        header = proc.stdout.readline()  # printed once the data is loaded, before epoch 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert header.startswith("mobilenet alpha 0.5 at 32 px"), header
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == \
        "edgecnn: interrupted before the first epoch ended; nothing was saved", err
    assert not (out / "last.pt").exists()


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "long"
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "train", "lenet5", "--data",
                             "digits", "--epochs", "200", "--device", "cpu", "-o", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        for line in proc.stdout:  # the first finished epoch, then Ctrl-C
            if line.startswith("epoch   1/200"):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"completed epochs are kept in {out}/last.pt" in err and "--resume" in err
