"""What a result was measured on, and the machine's measured fp32 peak.

Every benchmark record carries these conditions, so that two numbers that disagree can be
told apart by what they measured. The peak is a matrix product timed in the same run:
achieved MACs/s of a network divided by it is the network's efficiency on this machine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np

RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "torch", "numpy")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_info() -> dict[str, str]:
    """GPU name and driver from nvidia-smi, or {} when there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    name, _, driver = out.splitlines()[0].partition(",") if out else ("", "", "")
    return {"gpu": name.strip(), "gpu_driver": driver.strip()} if name else {}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in RUNTIME_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def conditions(threads: int | None) -> dict[str, Any]:
    """The conditions recorded with every result."""
    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        **gpu_info(),
        "packages": package_versions(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def rss_mb_peak() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb_now() -> float:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return float("nan")


def peak_gmacs(threads: int | None = None, n: int = 1024, repeats: int = 5) -> float:
    """fp32 matrix-product rate in GMAC/s (best of `repeats`), with BLAS held to `threads`.

    numpy's BLAS (OpenBLAS/MKL) is a well-tuned GEMM, so this stands in for the machine's
    attainable fp32 peak; threadpoolctl pins its thread count when installed.
    """
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    limit = contextlib.nullcontext()
    if threads:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(limits=threads)
    with limit:
        a @ b  # warm-up: thread pool start, page faults
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return n**3 / best / 1e9


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
