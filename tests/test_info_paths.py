"""`edgecnn info PATH` (issue 24): a missing path says so, an artifact's ONNX file is read
torch-free like its directory, and --json gives preprocessing as numbers and lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.runtime_artifacts import export_artifact

# The base install: none of the torch side importable (edgecnn/cli/main.py's TORCH_SIDE)
BASE = """
import sys
from edgecnn.cli.main import TORCH_SIDE, main
for m in TORCH_SIDE:
    sys.modules[m] = None
sys.exit(main(sys.argv[1:]))
"""


def _base(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BASE, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_artifact(tmp_path_factory.mktemp("info") / "art", name="lenet5").parent


@pytest.mark.parametrize("missing", ["exports/nope", "nope/model.onnx", "model.onnx"])
def test_a_missing_path_says_it_is_missing(missing: str) -> None:
    proc = _base("info", missing)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"edgecnn: error: {missing}: no such file or directory"


def test_a_zoo_name_on_the_base_install_needs_the_torch_side() -> None:
    proc = _base("info", "mobilenet")
    assert proc.returncode != 0 and "needs the torch side" in proc.stderr


def test_an_artifacts_onnx_file_is_read_torch_free(artifact: Path, tmp_path: Path) -> None:
    proc = _base("info", str(artifact / "model.onnx"), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["path"] == str(artifact) and "model.onnx" in info["files"]
    pre = info["preprocessing"]
    assert pre["resolution"] == 32 and isinstance(pre["resolution"], int)
    assert isinstance(pre["mean"], list) and all(isinstance(v, float) for v in pre["mean"])
    assert isinstance(pre["std"], list) and len(pre["std"]) == len(pre["mean"])
    lone = tmp_path / "lone.onnx"  # an ONNX file outside an artifact directory
    lone.write_bytes((artifact / "model.onnx").read_bytes())
    proc = _base("info", str(lone))
    assert proc.returncode != 0 and "not in an edgecnn artifact directory" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
