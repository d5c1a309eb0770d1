"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Two cores: keep torch from oversubscribing them when pytest-xdist runs two workers.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # the torch-free runtime tests run without it
        return
    torch.set_num_threads(1)


def run_cli(*args: str, check: bool = False, env: dict | None = None,
            cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `edgecnn` command in a subprocess (python -m edgecnn)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "edgecnn", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgecnn {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


# What a plain `python` shows of warnings.warn: everything but these (Python's default
# filters); Pillow's own warnings are silenced by edgecnn.runtime.preprocess on purpose.
_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_main(args: Sequence[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`edgecnn ARGS` in this process, through `edgecnn.cli.main.main`, the function the
    console command calls: (exit status, stdout, stderr) as `raise SystemExit(main())` would
    end. Captured at the file descriptors (what C libraries write counts); warnings the real
    command would print are appended to stderr, where they would appear. An exception that
    escapes main (a traceback in the real command) is raised here. Torch's thread count is
    put back after (a benchmark sets its own)."""
    import torch

    from edgecnn.cli.main import main

    capfd.readouterr()
    threads = torch.get_num_threads()
    with warnings.catch_warnings(record=True) as caught:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors, --help
            code = exc.code
        finally:
            torch.set_num_threads(threads)
    out, err = capfd.readouterr()
    shown = [w for w in caught if not issubclass(w.category, _HIDDEN)
             and "/PIL/" not in w.filename.replace("\\", "/")]
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                   for w in shown)
    return (0 if code is None else code if isinstance(code, int) else 1), out, err


def pytest_configure(config: pytest.Config) -> None:
    # known without pytest-xdist too (`-p no:xdist` with --strict-markers)
    config.addinivalue_line("markers", "xdist_group(name): tests one xdist worker runs")


# The longest tests outside an xdist group, run first. `make test` runs `-n 2 --dist
# loadgroup`: xdist hands out the groups first (most tests first: the bad-input table, the
# wheel), then single tests in collection order, topping a worker up when it has two or
# fewer left. A long test collected late would run alone at the end while the other
# worker idles; collected first, it overlaps the groups and the short tests fill in.
SLOWEST_FIRST = ("tests/test_arm64.py::test_the_runtime_on_aarch64_under_emulation",
                 "tests/test_readme.py::test_readme_tour_runs[mnv1]",
                 "tests/test_pipeline.py::test_pipeline_killed_in_every_stage",
                 "tests/test_zoo_export_cli.py::test_cli_export_matches_pytorch[vgg11_bn",
                 "tests/test_readme.py::test_readme_tour_runs[standalone]")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(SLOWEST_FIRST)
                     if item.nodeid.startswith(prefix)), len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    """Say how many bad-input cases the reliability table tried (the issue asks for it)."""
    stats = terminalreporter.stats
    ran = [r for key in ("passed", "failed") for r in stats.get(key, [])
           if "test_bad_inputs.py::test_bad_input[" in getattr(r, "nodeid", "")]
    if ran:
        failed = sum(1 for r in ran if r.outcome == "failed")
        terminalreporter.write_line(
            f"bad-input table: {len(ran)} cases tried across every command, {failed} failed")


def run_on_terminal(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None,
                    timeout: float = 120) -> tuple[int, str]:
    """(exit code, what it wrote) of `cmd` with stdin, stdout and stderr on a fresh
    pseudo-terminal of 40 x 120 (a fresh one is 0 x 0, which tqdm takes for no room)."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdin=secondary, stdout=secondary, stderr=secondary,
                            cwd=cwd or ROOT, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    code = proc.wait(timeout=timeout)
    os.close(primary)
    return code, b"".join(chunks).decode(errors="replace")


def default_sigint() -> None:
    """preexec_fn for a child that a test Ctrl-Cs: SIGINT back to its default disposition, as
    a shell starts a foreground command. An ignored SIGINT is inherited across exec, and a
    Python started with it ignored never raises KeyboardInterrupt; in the full suite under
    pytest-xdist both Ctrl-C tests once saw their child ignore SIGINT (passing alone)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
