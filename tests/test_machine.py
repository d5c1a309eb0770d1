"""What a benchmark record says about the machine: Jetson facts, memory on every OS."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecnn.bench.machine import gpu_info, jetson_info


def _orin_tree(root: Path) -> Path:
    """The files an Orin Nano on L4T R35.4.1 has, with their real formats."""
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\0")
    (root / "etc").mkdir()
    (root / "etc/nv_tegra_release").write_text(
        "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
        "DATE: Tue Aug  1 19:57:35 UTC 2023\n# KERNEL_VARIANT: oot\n")
    for name, cur, top in (("3d00000.host1x", 408000000, 408000000),
                           ("17000000.ga10b", 306000000, 624750000)):
        node = root / "sys/class/devfreq" / name
        node.mkdir(parents=True)
        (node / "cur_freq").write_text(f"{cur}\n")
        (node / "max_freq").write_text(f"{top}\n")
    return root


def test_jetson_facts_are_read_from_l4t_files(tmp_path: Path) -> None:
    facts = jetson_info(_orin_tree(tmp_path))
    assert facts == {"gpu": "NVIDIA Jetson Orin Nano Developer Kit", "l4t": "R35.4.1",
                     "gpu_driver": "L4T R35.4.1", "gpu_clock_mhz": 306.0,
                     "gpu_max_clock_mhz": 624.75}


def test_a_raspberry_pi_is_not_taken_for_a_jetson(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert jetson_info(tmp_path) == {}


def test_a_jetson_without_nvidia_smi_still_names_its_gpu(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi is on PATH: its answer comes first")
    assert gpu_info(_orin_tree(tmp_path))["gpu"] == "NVIDIA Jetson Orin Nano Developer Kit"


def test_no_gpu_is_said_not_left_empty(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi is on PATH")
    facts = gpu_info(tmp_path)  # an empty root: no Jetson files either
    assert facts["gpu"] is None and facts["gpu_note"].startswith("no GPU found")


GROW = """
import sys
{block}
import numpy as np
from edgecnn.timing.memory import rss_mb_now, rss_mb_peak
before = rss_mb_now()
block = np.ones(64 * 2**20 // 8)  # 64 MiB of float64, every page written
print(rss_mb_now() - before, rss_mb_peak() - rss_mb_now())
"""


@pytest.mark.parametrize("psutil", ["installed", "absent"])
def test_resident_memory_follows_an_allocation(psutil: str) -> None:
    """rss_mb_now (through psutil, or /proc where it is absent) and rss_mb_peak measure this
    process: 64 MiB allocated and touched show as 64 MiB more, and the peak is at least now.
    In a fresh process: a long-lived one may serve the block from heap pages it already
    holds (freed earlier, kept resident), and then nothing grows."""
    if not Path("/proc/self/statm").is_file():
        pytest.skip("no /proc")
    if psutil == "installed" and importlib.util.find_spec("psutil") is None:
        pytest.skip("psutil is not installed")
    block = "sys.modules['psutil'] = None" if psutil == "absent" else ""
    out = subprocess.run([sys.executable, "-c", GROW.format(block=block)], capture_output=True,
                         text=True, check=True).stdout.split()
    grown, peak_over_now = map(float, out)
    assert grown == pytest.approx(64, abs=8), grown
    assert peak_over_now >= -1  # rounding: KiB against pages


def test_machine_imports_where_there_is_no_resource_module() -> None:
    # Windows has no `resource`: importing the bench must not fail there
    code = ("import sys; sys.modules['resource'] = None\n"
            "from edgecnn.timing.memory import rss_mb_now, rss_mb_peak\n"
            "print(rss_mb_now() > 0, rss_mb_peak())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "True"
    assert out[1] == "nan"  # Linux psutil has no peak working set; Windows' has
