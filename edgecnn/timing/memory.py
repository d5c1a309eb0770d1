"""The memory a measured process holds: its resident set now and at its peak.

psutil where it is installed (the only way on Windows), else the OS directly. The harness
records what loading each runner added, and the peak of the measuring process.
"""

from __future__ import annotations

import contextlib
import os
import sys


def rss_mb_peak() -> float:
    """Peak resident set size of this process so far, in MB (NaN where the OS does not say)."""
    try:
        import resource  # POSIX only
    except ImportError:  # Windows: psutil reports the peak working set
        return _psutil_memory("peak_wset")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS: bytes; else KiB


def rss_mb_now() -> float:
    """Resident set size of this process now, in MB (NaN where the OS does not say)."""
    now = _psutil_memory("rss")
    if now == now:  # not NaN
        return now
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return float("nan")


def _psutil_memory(field: str) -> float:
    try:
        import psutil
    except ImportError:
        return float("nan")
    value = getattr(psutil.Process().memory_info(), field, None)
    return value / 2**20 if value is not None else float("nan")
