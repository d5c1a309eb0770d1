"""Facts about the machine this process runs on, from the standard library alone, for every
layer (the torch-free runtime included): what a cache key or a benchmark's record names.

    cpu_model()    'AMD EPYC', 'Intel(R) Xeon(R) Processor' (Linux: /proc/cpuinfo)
    cpu_flags()    {'avx2', 'avx512_vnni', ...}; empty where unknown
    cache_root()   $EDGECNN_CACHE, else $XDG_CACHE_HOME/edgecnn, else ~/.cache/edgecnn
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
