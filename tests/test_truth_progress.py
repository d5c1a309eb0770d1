"""Progress on long waits (issue 24): bars on a terminal, quiet with --no-progress or when
stderr is not a terminal, and a base install (no tqdm) runs without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecnn.cli.main import build_parser
from tests.conftest import ROOT, run_on_terminal

SCRIPT = """
import sys, time
{block}
from edgecnn import progress
progress.quiet({quiet})
print("enabled", progress.enabled(), file=sys.stderr)
with progress.Bar(3, "working", unit="step") as bar:
    for _ in range(3):
        bar.update(1)
with progress.Ticker("stage") as t:
    t.write("edgecnn: calibrating")
    time.sleep(0.6)
"""


def _on_terminal(code: str) -> str:
    """stderr of `code` when stderr is a terminal (a pseudo-terminal)."""
    _, text = run_on_terminal([sys.executable, "-c", code],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    return text


def test_bars_on_a_terminal_and_quiet_on_request() -> None:
    shown = _on_terminal(SCRIPT.format(block="", quiet=False))
    assert "enabled True" in shown and "working" in shown and "0/3" in shown
    assert "calibrating" in shown and "[00:0" in shown  # the ticker's elapsed time
    asked = _on_terminal(SCRIPT.format(block="", quiet=True))
    assert "enabled False" in asked and "working" not in asked and "[00:0" not in asked
    assert "edgecnn: calibrating" in asked  # the log line itself stays


def test_without_tqdm_a_plain_ticker() -> None:
    """The base install has no tqdm: a one-line ticker still shows each wait, and
    --no-progress still silences it."""
    no_tqdm = _on_terminal(SCRIPT.format(block="sys.modules['tqdm'] = None", quiet=False))
    assert "Traceback" not in no_tqdm
    assert "working: 0/3 step" in no_tqdm and "calibrating [00:0" in no_tqdm
    asked = _on_terminal(SCRIPT.format(block="sys.modules['tqdm'] = None", quiet=True))
    assert "working" not in asked and "[00:0" not in asked


@pytest.mark.parametrize("block", ["", "sys.modules['tqdm'] = None"])
def test_warnings_go_above_the_bar(block: str) -> None:
    """A warning logged while a ticker is up starts on a line of its own, not glued to the
    ticker's text ("export [00:01]edgecnn: warning: ...")."""
    code = f"""
import sys, time, warnings
{block}
from edgecnn import progress
from edgecnn.data import DataWarning
from edgecnn.cli.main import _show_warning
warnings.showwarning = _show_warning
with progress.Ticker("export"):
    time.sleep(0.7)
    warnings.warn("unreadable image skipped: x.png", DataWarning)
    time.sleep(0.7)
"""
    shown = _on_terminal(code)
    line = next(ln for ln in shown.replace("\r", "\n").splitlines()
                if "unreadable image skipped" in ln)
    assert line.replace("\x1b[K", "").lstrip().startswith("edgecnn: warning:"), repr(line)


def test_not_a_terminal_is_quiet(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(block="", quiet=False)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert "enabled False" in proc.stderr and "working" not in proc.stderr


@pytest.mark.parametrize("command", ["train", "export", "sweep", "bench", "tune", "fit"])
def test_long_commands_take_no_progress(command: str) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert "--no-progress" in sub.choices[command]._option_string_actions


@pytest.mark.parametrize("no_tqdm", [False, True])
def test_bench_on_a_terminal_says_each_stage(tmp_path: Path, no_tqdm: bool) -> None:
    """bench's progress names what it is doing before the timing (measuring the peak,
    loading, warm-up: no frozen "0call"), and the accuracy pass per case; the base install
    (no tqdm) gets the plain ticker; --no-progress silences both."""
    from tests.runtime_artifacts import export_artifact

    art = export_artifact(tmp_path / "art", name="lenet5").parent
    block = "sys.modules['tqdm'] = None" if no_tqdm else ""
    code = f"""
import sys
{block}
from edgecnn.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
    args = ["bench", str(art), "--iters", "20", "--threads", "1", "--data", "digits"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code_, shown = run_on_terminal([sys.executable, "-c", code, *args], env=env, timeout=300)
    assert code_ == 0, shown
    stages = ("bench: measuring the machine's peak", f"bench {art.name}: warm-up",
              f"bench {art.name}: accuracy onnxruntime fp32 b1")
    for stage in stages:
        assert stage in shown, (stage, shown[-2000:])
    _, quiet_run = run_on_terminal([sys.executable, "-c", code, *args, "--no-progress"],
                                   env=env, timeout=300)
    assert not any(stage in quiet_run for stage in stages)


def test_a_stage_keeps_its_elapsed_time_moving_until_the_bar_closes() -> None:
    """A stage that counts no steps (loading, the machine's peak) is redrawn from a thread:
    its elapsed time moves (a newcomer saw "measuring the machine's peak [00:00]" frozen for
    3 s); closing the bar stops the redraws."""
    import time

    from edgecnn.progress import Bar

    class Drawn:  # the part of tqdm's interface a stage uses, counting redraws
        def __init__(self) -> None:
            self.refreshes = 0

        def set_description_str(self, desc: str, refresh: bool = True) -> None:
            self.desc = desc

        def refresh(self) -> None:
            self.refreshes += 1

        def close(self) -> None:
            pass

    bar = Bar(None, "bench", show=False)  # no terminal here: give it a bar by hand
    bar.bar = drawn = Drawn()
    bar.stage("measuring the machine's peak")
    deadline = time.monotonic() + 30
    while drawn.refreshes < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert drawn.refreshes >= 2 and drawn.desc == "measuring the machine's peak"
    bar.close()
    time.sleep(0.6)  # a redraw already under way may land; none after it
    settled = drawn.refreshes
    time.sleep(1.2)
    assert drawn.refreshes == settled
