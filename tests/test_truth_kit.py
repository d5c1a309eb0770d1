"""The device kit is part of the package (issue 24): `edgecnn app` / `python -m edgecnn.app`
score a labelled folder naming the file and stage, `edgecnn kit` prints where the Jetson,
Nano and arm64 scripts are, and a wheel carries them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.cli.main import main
from tests.conftest import ROOT
from tests.runtime_artifacts import export_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("truth-kit")
    return export_artifact(root / "art", name="mobilenet", alpha=0.25, resolution=32).parent


def test_app_command_scores_class_folders(artifact: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for cls in ("2", "5"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    assert main(["app", str(artifact), "--images", str(tmp_path), "--topk", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    shown = [line.split()[0] for line in out if line.endswith("%") and "/" in line.split()[0]]
    assert shown == ["2/0.png", "2/1.png", "5/0.png", "5/1.png"]
    correct = sum(line.split()[0].split("/")[0] == line.split()[1] for line in out
                  if line.split()[0] in shown)
    assert f"({correct}/4) for model.onnx: as trained (not pruned), fp32" in "\n".join(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "edgecnn.app", str(artifact), "--images",
                           str(tmp_path / "2"), "--topk", "1"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "2 images" in proc.stdout, proc.stderr


def test_kit_prints_where_the_device_scripts_are(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kit = Path(lines[0])
    for sub, script in (("jetson", "setup.sh"), ("nano", "trtexec_bench.sh"),
                        ("arm64", "setup_userland.sh")):
        assert (kit / sub / script).is_file()
        assert any(line.strip().startswith(f"{sub}/") for line in lines[1:])


@pytest.mark.parametrize("as_json", [False, True])
def test_app_exits_1_when_a_file_is_unreadable_like_predict(
        artifact: Path, tmp_path: Path, as_json: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """As the README says for predict: the good files are classified, each unreadable one is
    an error line, and the exit status is 1."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    flags = ["--json"] if as_json else []
    assert main(["app", str(artifact), "--images", str(tmp_path), *flags]) == 1
    assert main(["predict", str(artifact), str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    assert f"app: error: {tmp_path / 'bad.png'}" in err and "edgecnn: error:" in err
