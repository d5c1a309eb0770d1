"""A model's memory footprint as a device app sees it: a fresh Python process that imports
the torch-free runtime, `load()`s the file and runs N inferences; nothing else is resident.

The benchmark's own process holds every runtime, the roofline's model and the data set, so
its peak says nothing about a device. Peak resident memory is the child's own high-water
mark (VmHWM of /proc/self/status): Linux carries the parent's resident size at fork into a
child's ru_maxrss, so ru_maxrss would be floored at the (large) measuring process. Where
/proc is absent, the child's ru_maxrss is the fallback. benchmarks/runtime/footprint.py
measures its scenarios through `run_fresh` too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError

# Appended to a scenario: the process's own peak RSS, in kB, on stderr (last statement).
REPORT_HWM = """
import sys as _sys
try:
    _hwm = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
except (OSError, IndexError):
    from edgecnn.timing.memory import rss_mb_peak as _peak
    _hwm = str(int(_peak() * 1024))
_sys.stderr.write("VmHWM " + _hwm)
"""

# What a device app does: import the runtime, load, infer N times on the model's input.
APP = """
import json, sys
import numpy as np
from edgecnn.timing.memory import rss_mb_now
from edgecnn.runtime import load
from edgecnn.errors import EdgeCNNError
path, runtime, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shape = tuple(json.loads(sys.argv[5]))
before = rss_mb_now()
options = {"threads": threads} if threads else {}
try:
    model = load(path, runtime=runtime, device="cpu", **options)
except EdgeCNNError:  # an ONNX file without edgecnn metadata: the tensor is fed as it is
    c = shape[1]
    model = load(path, runtime=runtime, device="cpu", mean=[0.0] * c, std=[1.0] * c,
                 resolution=tuple(shape[2:]), **options)
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
model.infer(x)
loaded = rss_mb_now()
for _ in range(iters):
    model.infer(x)
print(json.dumps({"rss_mb_before": before, "rss_mb_loaded": loaded}))
"""


def run_fresh(code: str, args: Sequence[str], env: dict[str, str] | None = None,
              cwd: str | Path | None = None) -> tuple[float, float, float, str]:
    """(wall seconds, own peak RSS MB, ru_maxrss MB, stdout) of `code` in a fresh interpreter.
    Wall time runs from just before the fork to the child's exit; the scenarios print little
    (their pipes are read after the exit)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code + REPORT_HWM, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    try:
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            maxrss_kb = float(usage.ru_maxrss)  # KiB on Linux
        else:  # Windows
            proc.wait()
            maxrss_kb = float("nan")
    except BaseException:  # Ctrl-C: the child goes with us
        proc.kill()
        proc.wait()
        raise
    finally:
        wall = time.perf_counter() - start
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    text, errors = out.decode(errors="replace"), err.decode(errors="replace")
    if proc.returncode != 0 or "VmHWM " not in errors:
        last = errors.strip().splitlines()[-1] if errors.strip() else f"exit {proc.returncode}"
        raise EdgeCNNError(f"the fresh process failed: {last}")
    hwm_kb = float(errors.rsplit("VmHWM ", 1)[1].split()[0])
    return wall, hwm_kb / 1024, maxrss_kb / 1024, text.strip()


def app_footprint(path: str | Path, input_shape: Sequence[int], *, runtime: str = "onnxruntime",
                  threads: int | None = None, iters: int = 20) -> dict[str, Any]:
    """The footprint of `path` in a fresh process running only edgecnn.runtime: resident
    memory added by load() and the first call, and the process's peak over `iters` more
    calls (MiB). `input_shape` is one batch, e.g. (1, 3, 224, 224)."""
    wall, peak, _, out = run_fresh(APP, [str(path), runtime, str(threads or 0), str(iters),
                                         json.dumps(list(input_shape))],
                                   env=_env())
    numbers = json.loads(out.splitlines()[-1])
    return {"rss_mb_load": numbers["rss_mb_loaded"] - numbers["rss_mb_before"],
            "rss_mb_peak": peak, "wall_s": wall, "iters": iters}


def _env() -> dict[str, str]:
    """This process's environment, with the directory this edgecnn came from on the path (a
    checkout run without installing imports the same package in the child)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
