"""What a result was measured on, and the machine's measured fp32 peak.

Every benchmark record carries these conditions, so that two numbers that disagree can be
told apart by what they measured. The peak is a matrix product timed in the same run:
achieved MACs/s of a network divided by it is the network's efficiency on the machine that
ran it.

GPU facts come from nvidia-smi on a desktop or server GPU, and from L4T's files on a Jetson
(where nvidia-smi is absent, or says little): /etc/nv_tegra_release, /proc/device-tree/model
and the GPU's devfreq clocks under /sys/class/devfreq. With neither, the record says so.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.host import cpu_model

RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "torch", "numpy")


def gpu_info(root: Path = Path("/")) -> dict[str, Any]:
    """GPU name, driver and (on a Jetson) L4T release and clocks; says when none is found.

    `root` is the file system root the Jetson files are read under (a test points it at a
    directory laid out like one)."""
    facts = _nvidia_smi()
    for key, value in jetson_info(root).items():  # nvidia-smi's name and driver come first
        facts.setdefault(key, value)
    if not facts.get("gpu"):
        return {"gpu": None, "gpu_note": "no GPU found: nvidia-smi absent or failing, and no "
                "Jetson files (/etc/nv_tegra_release, /proc/device-tree/model)"}
    return facts


def _nvidia_smi() -> dict[str, Any]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    name, _, driver = out.splitlines()[0].partition(",") if out else ("", "", "")
    return {"gpu": name.strip(), "gpu_driver": driver.strip()} if name.strip() else {}


# devfreq names of the Tegra integrated GPUs: Nano (gm20b), TX2 (gp10b), Xavier (gv11b),
# Orin (ga10b); older L4T names the node after its bus address, "57000000.gpu".
_TEGRA_GPU = re.compile(r"gpu|gm20b|gp10b|gv11b|ga10b", re.IGNORECASE)


def jetson_info(root: Path = Path("/")) -> dict[str, Any]:
    """{} off a Jetson; else board model, L4T release and the GPU's devfreq clocks (MHz)."""
    facts: dict[str, Any] = {}
    model = ""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        model = (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode().strip()
    with contextlib.suppress(OSError, IndexError):
        release = (root / "etc/nv_tegra_release").read_text(encoding="utf-8").splitlines()[0]
        # "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, ..."
        m = re.match(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
        facts["l4t"] = f"R{m.group(1)}.{m.group(2)}" if m else release.lstrip("# ").strip()
    if not facts and not any(w in model.lower() for w in ("jetson", "tegra", "nvidia")):
        return {}  # not a Jetson (a Raspberry Pi has a device-tree model too)
    facts["gpu"] = model or "NVIDIA Jetson (no /proc/device-tree/model)"  # the SoC's GPU
    facts["gpu_driver"] = f"L4T {facts['l4t']}" if "l4t" in facts else "?"
    with contextlib.suppress(OSError):
        for node in sorted((root / "sys/class/devfreq").iterdir()):
            if _TEGRA_GPU.search(node.name) and (node / "cur_freq").is_file():
                facts["gpu_clock_mhz"] = _mhz(node / "cur_freq")
                facts["gpu_max_clock_mhz"] = _mhz(node / "max_freq")
                break
    return facts


def _mhz(path: Path) -> float | None:
    try:
        return int(path.read_text(encoding="utf-8").split()[0]) / 1e6  # devfreq says Hz
    except (OSError, ValueError, IndexError):
        return None


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


def load_and_clock(root: Path = Path("/")) -> dict[str, float | None]:
    """The 1-minute load average and the mean CPU clock (MHz) now, where the OS reports them
    (None elsewhere): /proc/loadavg; cpufreq's scaling_cur_freq, else /proc/cpuinfo's "cpu
    MHz" (a VM without cpufreq). Taken before and after timing: a busy or throttled machine
    shows in the record. `root` is read under for tests."""
    load = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        load = float((root / "proc/loadavg").read_text(encoding="utf-8").split()[0])
    khz = []
    for f in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            khz.append(int(f.read_text(encoding="utf-8").split()[0]))
    mhz = [k / 1e3 for k in khz]
    if not mhz:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = (root / "proc/cpuinfo").read_text(encoding="utf-8")
            mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    return {"load_1min": load, "cpu_mhz": round(sum(mhz) / len(mhz), 1) if mhz else None}


def noisy_reasons(before: dict[str, Any], after: dict[str, Any], cores: int | None,
                  noise_pct: dict[str, float], limit_pct: float) -> list[str]:
    """Why the figures of a run cannot be trusted, or [] when nothing says so: a load above
    the cores before or after timing (others ran beside the benchmark), or a case whose own
    noise band is wider than `limit_pct`."""
    why = []
    for when, snap in (("before", before), ("after", after)):
        load = snap.get("load_1min")
        if load is not None and cores and load > cores:
            why.append(f"load average {load:.2f} {when} timing, above the {cores} cores")
    for label, pct in noise_pct.items():
        if pct > limit_pct:
            why.append(f"{label} timed {pct:.1f}% apart between the halves of its run "
                       f"(noise band over {limit_pct:.0f}%)")
    return why


def peak_gmacs(threads: int | None = None, n: int = 1024, repeats: int = 10) -> float:
    """fp32 matrix-product rate in GMAC/s (see best_time), with BLAS held to `threads`.

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
        best = best_time(lambda: a @ b, repeats)
    return n**3 / best / 1e9


def best_time(fn: Any, repeats: int = 10, warmup: int = 3, budget_s: float = 2.0) -> float:
    """The least wall time of up to `repeats` calls of `fn`, in s, after up to `warmup` calls.
    For peak rates: a 1024^3 product takes 10-30 ms on 2 cores, and the first calls (thread
    start-up, page faults, weight packing) or a preempted one read up to 2x slow.

    Calls stop once `budget_s` is spent (at least one timed call always runs): on a slow or
    emulated device (qemu's aarch64 takes seconds per 1024^3 product) a fixed count would
    take minutes before the benchmark proper, for a figure that only scales the roofline."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        if time.perf_counter() - start > budget_s / 2:
            break
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return best
