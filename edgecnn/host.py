"""Facts about the machine this process runs on, from the standard library alone, for every
layer (the torch-free runtime included): what a cache key or a benchmark's record names.

    cpu_model()    'AMD EPYC', 'Intel(R) Xeon(R) Processor' (Linux: /proc/cpuinfo)
    cpu_flags()    {'avx2', 'avx512_vnni', ...}; empty where unknown
    cache_root()   $EDGECNN_CACHE, else $XDG_CACHE_HOME/edgecnn, else ~/.cache/edgecnn
    last_level_cache_bytes()   33554432 for a 32 MiB L3 (Linux sysfs); None where unknown
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux x86 'flags', Arm 'Features'); empty when unknown."""
    return set((_cpuinfo("flags") or _cpuinfo("Features") or "").split())


def cache_root() -> Path:
    """Where edgecnn caches what it measured or built (TensorRT engines, --runtime fastest)."""
    root = os.environ.get("EDGECNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgecnn")
    return Path(root)


def last_level_cache_bytes() -> int | None:
    """The size of CPU 0's largest cache level (Linux: /sys/devices/system/cpu)."""
    best: tuple[int, int] | None = None
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit() and (best is None or level > best[0]):
            best = (level, int(digits) * scale)
    return best[1] if best else None
