"""The runtime on a user's real photo folder: bad files cost only themselves, a 108 MP photo
is decoded at reduced size, a decompression bomb is one line, Pillow never prints, and one
Model serves four threads with the serial answers."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.runtime import load
from tests.conftest import ROOT, run_cli
from tests.runtime_artifacts import export_artifact, sample_images

RES = 32


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained mobilenet 0.25 at 32 px with a dynamic batch (metadata: trained false)."""
    root = tmp_path_factory.mktemp("photos-art")
    return export_artifact(root / "art", name="mobilenet", alpha=0.25, resolution=RES,
                           dynamic_batch=True).parent


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header declares width x height (and whose data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def roll(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera roll: two real photos, three unreadable files."""
    folder = tmp_path_factory.mktemp("roll")
    china, flower = sample_images()
    Image.open(china).resize((160, 107)).save(folder / "a_china.jpg")
    Image.open(flower).resize((160, 107)).save(folder / "c_flower.png")
    (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = (folder / "c_flower.png").read_bytes()
    (folder / "d_truncated.png").write_bytes(good[: len(good) // 3])
    (folder / "e_empty.jpg").write_bytes(b"")
    return folder


BAD = ("b_corrupt.jpg", "d_truncated.png", "e_empty.jpg")
GOOD = ("a_china.jpg", "c_flower.png")


def test_predict_classifies_every_good_file_and_names_each_bad_one(artifact: Path,
                                                                    roll: Path) -> None:
    proc = run_cli("predict", str(artifact), str(roll), "--topk", "1")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edgecnn: error: ")]
    assert len(errors) == len(BAD)
    for name, line in zip(BAD, errors):
        assert name in line
    assert [line for line in proc.stdout.splitlines() if not line.startswith(" ")] == [
        str(roll / name) for name in GOOD]
    assert "untrained weights" in proc.stderr
    proc = run_cli("predict", str(artifact), str(roll), "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and [Path(p["image"]).name for p in out["predictions"]] == list(
        GOOD) and [Path(e["image"]).name for e in out["errors"]] == list(BAD)


def test_deploy_app_goes_on_after_a_bad_file(artifact: Path, roll: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "app.py"), str(artifact),
                           "--images", str(roll), "--topk", "1"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[:-1]] == list(GOOD)
    assert proc.stdout.splitlines()[-1].startswith("2 images,")
    assert "3 could not be read" in proc.stdout.splitlines()[-1]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("app: error: ")]
    assert [next(b for b in BAD if b in line) for line in errors] == list(BAD)
    from edgecnn.metadata import UNTRAINED_WARNING

    assert f"app: warning: {UNTRAINED_WARNING}" in proc.stderr.splitlines()
    predict = run_cli("predict", str(artifact), str(roll / GOOD[0]))
    assert f"edgecnn: warning: {UNTRAINED_WARNING}" in predict.stderr.splitlines()
    # which file answered (model.onnx, model.int8.onnx or a tuned one) is the first line
    assert predict.stderr.startswith("edgecnn: model.onnx in onnxruntime "), predict.stderr


def test_a_108_megapixel_photo_and_a_decompression_bomb(artifact: Path, tmp_path: Path) -> None:
    big = tmp_path / "phone.jpg"
    img = Image.new("RGB", (12000, 9000), (30, 120, 200))
    img.paste((250, 240, 10), (0, 0, 6000, 4500))
    img.save(big, quality=40)
    del img
    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 30000, 30000)  # 900 MP declared
    proc = run_cli("predict", str(artifact), str(big), "--topk", "1")
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "warn" not in proc.stderr.replace(
        "edgecnn: warning: this artifact has untrained", "")
    with load(artifact) as model:  # decoded with JPEG draft: at least 2x the 32 px it needs
        pixels = model.preprocess.pixels(big)
        assert pixels.shape == (RES, RES, 3)
        assert pixels[2, 2].tolist() == pytest.approx([250, 240, 10], abs=8)  # yellow corner
    proc = run_cli("predict", str(artifact), str(bomb))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "decompression bomb" in lines[0] and "bomb.png" in lines[0]


def test_draft_decoding_keeps_twice_the_models_resolution(tmp_path: Path) -> None:
    from edgecnn.runtime.preprocess import DRAFT_ABOVE, decode
    from edgecnn.metadata import SQUASH

    w, h = 6000, 4500  # 27 MP, over DRAFT_ABOVE
    assert w * h > DRAFT_ABOVE
    Image.new("RGB", (w, h), (10, 20, 30)).save(tmp_path / "p.jpg", quality=30)
    for need in (64, 448, 1200):
        im = decode(tmp_path / "p.jpg", SQUASH, gray=False, draft=need)
        assert min(im.size) >= need and im.size[0] < w or need > h // 2


def test_four_threads_on_one_model_give_the_serial_answers(artifact: Path) -> None:
    china, flower = sample_images()
    rng = np.random.default_rng(0)
    base = [np.asarray(Image.open(p).convert("RGB")) for p in (china, flower)]
    images = [np.ascontiguousarray(np.roll(base[i % 2], int(rng.integers(0, 200)), axis=1))
              for i in range(24)]
    for runtime in ("onnxruntime", "openvino"):
        with load(artifact, runtime=runtime, device="cpu") as model:
            serial = [model.predict(im, topk=3)[0] for im in images]
            with ThreadPoolExecutor(4) as pool:
                parallel = list(pool.map(lambda im: model.predict(im, topk=3)[0], images * 4))
            assert parallel == serial * 4, runtime
