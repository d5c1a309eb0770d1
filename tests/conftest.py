"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
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


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    """Say how many bad-input cases the reliability table tried (the issue asks for it)."""
    stats = terminalreporter.stats
    ran = [r for key in ("passed", "failed") for r in stats.get(key, [])
           if "test_bad_inputs.py::test_bad_input[" in getattr(r, "nodeid", "")]
    if ran:
        failed = sum(1 for r in ran if r.outcome == "failed")
        terminalreporter.write_line(
            f"bad-input table: {len(ran)} cases tried across every command, {failed} failed")
