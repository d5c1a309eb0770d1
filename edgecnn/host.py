"""Facts about the machine this process runs on, from the standard library alone, for every
layer (the torch-free runtime included): what a cache key or a benchmark's record names.

    cpu_model()    'AMD EPYC', 'Intel(R) Xeon(R) Processor' (Linux: /proc/cpuinfo)
    cpu_flags()    {'avx2', 'avx512_vnni', ...}; empty where unknown
    int8_saturates()   True on x86-64 without VNNI: its u8 x s8 kernels clip 8-bit weights
    cache_root()   $EDGECNN_CACHE, else $XDG_CACHE_HOME/edgecnn, else ~/.cache/edgecnn
    last_level_cache_bytes()   33554432 for a 32 MiB L3 (Linux sysfs); None where unknown
    board()        'NVIDIA Jetson Orin Nano ...', 'Raspberry Pi 5 Model B'; None where unknown
    device()       what a measurement on this machine is recorded with (`edgecnn tune`)
    device_key(d)  a short stable name for one such device
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

# The instruction-set features int8 and fp32 kernels dispatch on: x86 (AVX2, AVX-512, VNNI,
# AMX) and Arm (NEON is 'asimd', dot product 'asimddp', int8 matrix multiply 'i8mm').
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve", "bf16")


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


def int8_saturates(arch: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether this CPU's (or the one named by `arch` and `flags`) int8 convolution kernels
    can clip with 8-bit weights. x86-64 without VNNI multiplies u8 x s8 with VPMADDUBSW
    (AVX2, AVX-512BW), which adds two products into a saturating int16: 255 * 127 * 2 =
    64,770 > 32,767. VNNI (VPDPBUSD), AMX and Arm's dot products accumulate in int32. 7-bit
    weights never clip (export/quantize.weight_range)."""
    arch = platform.machine() if arch is None else arch
    flags = cpu_flags() if flags is None else flags
    return arch.lower() in ("x86_64", "amd64") and not flags & {"avx512_vnni", "avx_vnni",
                                                                   "amx_int8"}


def vnni_host() -> bool:
    """An x86-64 CPU whose int8 kernels take 8-bit weights (VNNI or AMX): the cpu-x86-vnni
    recipe's CPUs."""
    return platform.machine().lower() in ("x86_64", "amd64") and not int8_saturates()


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


def board() -> str | None:
    """The board's name where the firmware gives one: the device tree on Jetson and
    Raspberry Pi, DMI on PCs and VMs."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model",
                 "/sys/class/dmi/id/product_name"):
        try:
            text = Path(path).read_bytes().replace(b"\0", b"").decode("utf-8", "replace")
        except OSError:
            continue
        if text.strip():
            return text.strip()
    return None


def device() -> dict[str, Any]:
    """This machine as a measurement names it: CPU model, architecture, cores, the ISA
    features kernels dispatch on, and the board."""
    return {"cpu_model": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count() or 1,
            "isa": sorted(cpu_flags() & set(ISA_FLAGS)), "board": board()}


def device_key(identity: dict[str, Any]) -> str:
    """12 hex digits naming a device (`device()`): the same machine gives the same key."""
    import hashlib

    text = json.dumps({k: identity.get(k) for k in ("cpu_model", "arch", "cores", "isa",
                                                      "board")}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
