"""SIGTERM unwinds like Ctrl-C (nothing half-written is left), and a path that does not
exist is said to be missing, never taken for a zoo name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, run_cli


def test_sigterm_during_export_leaves_no_temporary_directory(tmp_path: Path) -> None:
    out = tmp_path / "exports" / "m"
    out.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "export", "mobilenet_v3_large",
                             "--int8", "--calib-data", "random", "-o", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(out.parent.iterdir()):
        time.sleep(0.05)  # the export's temporary sibling exists: it is at work
    assert any(out.parent.iterdir()), "the export never started"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    # what to do next: export keeps nothing to resume from
    assert err.strip().splitlines()[-1] == ("edgecnn: interrupted; an export does not resume: "
                                            "the same command starts it over"), err
    assert list(out.parent.iterdir()) == []  # no hidden .m.*.tmp directory, no half artifact


def test_a_missing_path_is_said_to_be_missing() -> None:
    proc = run_cli("bench", "exports/nope")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "edgecnn: error: exports/nope: no such artifact directory " \
                                  "or ONNX file"
