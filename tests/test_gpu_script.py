"""benchmarks/zoo/gpu.py, the GPU benchmark, checked end to end on the CPU (--device cpu
--quick): a real subprocess, real exports, PyTorch and ONNX Runtime runs, files written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_quick_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "zoo" / "gpu.py"),
                           "--device", "cpu", "--quick", "-o", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "results-gpu-check.json").read_text())
    rows = {(r["runtime"], r["precision"], r["batch"]) for r in data["records"]}
    for batch in (1, 2):
        assert ("torch-eager contiguous", "fp32", batch) in rows
        assert ("torch-eager channels_last", "fp32", batch) in rows
        assert any(r[0].startswith("onnxruntime cpu") and r[2] == batch for r in rows)
    assert all(r["latency_ms_p50"] > 0 for r in data["records"])
    assert data["conditions"]["device"] == "cpu" and data["conditions"]["quick"] is True
    assert (tmp_path / "results-gpu-check.md").stat().st_size > 0
