"""One preprocessing everywhere: the tensor the runtime feeds is the tensor training's
evaluation saw, on real files of every awkward kind, and an exported model classifies every
validation image as `edgecnn eval` does.

Files are written here with Pillow: non-square, EXIF orientation 6, RGBA, palette with
transparency, grayscale, 16-bit gray and CMYK.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.data import DataConfig, eval_view, load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.metadata import LEGACY, PHOTOS, SQUASH, ArtifactMetadata, PreprocessPolicy
from edgecnn.runtime.preprocess import Preprocess
from tests.conftest import run_cli

KINDS = ("wide", "exif6", "rgba", "palette", "gray", "gray16", "cmyk")


def stripes(h: int, w: int, vertical: bool, seed: int) -> np.ndarray:
    """(h, w, 3) uint8: class 0 horizontal stripes, class 1 vertical, with noise."""
    rng = np.random.default_rng(seed)
    axis = np.arange(w if vertical else h)
    band = ((axis // 4) % 2 * 180 + 40).astype(np.float64)
    img = np.broadcast_to(band[None, :] if vertical else band[:, None], (h, w))
    img = img + rng.normal(0, 12, (h, w))
    tint = rng.uniform(0.7, 1.0, 3)
    return np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)


def write_kind(path: Path, kind: str, pixels: np.ndarray) -> Path:
    """One file of `kind` showing `pixels` (h, w, 3)."""
    rgb = Image.fromarray(pixels)
    if kind == "wide":
        out = path.with_suffix(".jpg")
        rgb.resize((rgb.width * 2, rgb.height)).save(out, quality=92)
    elif kind == "exif6":  # stored rotated; the EXIF tag says "rotate 270 to view"
        out = path.with_suffix(".jpg")
        exif = Image.Exif()
        exif[0x0112] = 6
        rgb.transpose(Image.Transpose.ROTATE_90).save(out, quality=92, exif=exif)
    elif kind == "rgba":
        out = path.with_suffix(".png")
        rgba = rgb.convert("RGBA")
        alpha = np.full(pixels.shape[:2], 255, np.uint8)
        alpha[:, : pixels.shape[1] // 4] = 0  # a transparent left quarter
        rgba.putalpha(Image.fromarray(alpha))
        rgba.save(out)
    elif kind == "palette":
        out = path.with_suffix(".png")
        pal = rgb.quantize(64)
        pal.info["transparency"] = 0
        pal.save(out, transparency=0)
    elif kind == "gray":
        out = path.with_suffix(".png")
        rgb.convert("L").save(out)
    elif kind == "gray16":
        out = path.with_suffix(".png")
        wide = np.asarray(rgb.convert("L"), np.uint16) * 257  # full 16-bit range
        Image.fromarray(wide).save(out)
        assert Image.open(out).mode.startswith("I")
    elif kind == "cmyk":
        out = path.with_suffix(".jpg")
        rgb.convert("CMYK").save(out, quality=92)
    else:
        raise ValueError(kind)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """imagefolder with train/ and val/: two classes, every kind of file in each split."""
    root = tmp_path_factory.mktemp("photos")
    seed = 0
    for split, repeats in (("train", 3), ("val", 1)):
        for label, name in enumerate(("horizontal", "vertical")):
            d = root / split / name
            d.mkdir(parents=True)
            for r in range(repeats):
                for kind in KINDS:
                    seed += 1
                    h, w = (40, 56) if seed % 2 else (64, 48)  # non-square everywhere
                    write_kind(d / f"{kind}-{r}", kind, stripes(h, w, bool(label), seed))
    return root


def test_every_file_kind_gives_training_evaluations_tensor(folder: Path) -> None:
    """Runtime (Preprocess from an artifact's metadata) vs the tensor `edgecnn eval` and the
    training loop feed the model (data.view + data.transforms.normalize), RGB and gray."""
    import torch

    from edgecnn.data.transforms import normalize

    val = load_dataset(f"imagefolder:{folder}", split="val", config=DataConfig(image_size=64))
    assert val.files is not None and len(val.files) == 2 * len(KINDS) and val.skipped == 0
    assert val.preprocess == PHOTOS  # photos: shorter side + 0.875 centre crop
    for chans, res in ((3, 24), (1, 20)):
        mean, std = ((0.4, 0.45, 0.5), (0.2, 0.25, 0.3)) if chans == 3 else ((0.45,), (0.22,))
        meta = ArtifactMetadata(model="lenet5", alpha=1.0, resolution=res, in_chans=chans,
                                mean=mean, std=std, classes=("h", "v"), dataset=val.name)
        runtime = Preprocess.from_metadata(
            ArtifactMetadata.from_props(meta.to_props()))  # through the ONNX props
        assert runtime.policy == PHOTOS
        seen = normalize(torch.from_numpy(eval_view(val, res, chans).images), mean, std).numpy()
        fed = runtime(list(val.files))
        assert fed.shape == seen.shape == (len(val), chans, res, res)
        worst = np.abs(fed - seen).reshape(len(val), -1).max(1)
        assert worst.max() <= 1e-5, dict(zip([f.name for f in val.files], worst))


def test_the_policy_steps_do_what_they_say(tmp_path: Path) -> None:
    # a 2:1 image whose left quarter is white: the centre crop sees no white
    img = np.zeros((32, 64, 3), np.uint8)
    img[:, :16] = 255
    Image.fromarray(img).save(tmp_path / "wide.png")
    photos = Preprocess(16, (0.0,) * 3, (1.0,) * 3, policy=PHOTOS)
    squash = Preprocess(16, (0.0,) * 3, (1.0,) * 3, policy=SQUASH)
    assert photos.pixels(tmp_path / "wide.png").max() == 0
    assert squash.pixels(tmp_path / "wide.png").mean() / 255 > 0.2  # 25% white, blurred
    # EXIF 6: the runtime sees the image upright, as a photo viewer shows it
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:10] = 255  # white top
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "rot.jpg", exif=exif, quality=95)
    px = Preprocess((40, 20), (0.0,) * 3, (1.0,) * 3, policy=SQUASH).pixels(tmp_path / "rot.jpg")
    assert px[:8].mean() > 200 and px[12:].mean() < 30
    legacy = Preprocess((40, 20), (0.0,) * 3, (1.0,) * 3, policy=LEGACY)
    assert legacy.pixels(tmp_path / "rot.jpg")[:8].mean() < 150  # old artifacts: no EXIF
    # a white stroke on a transparent PNG: drop keeps the stroke, white compositing hides it
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[8:12, :, :3], rgba[8:12, :, 3] = 255, 255
    Image.fromarray(rgba).save(tmp_path / "stroke.png")
    for alpha, stroke_visible in (("drop", True), ("black", True), ("white", False)):
        pol = PreprocessPolicy(alpha=alpha)
        px = Preprocess(20, (0.0,), (1.0,), policy=pol).pixels(tmp_path / "stroke.png")
        assert (px.min() == 0) == stroke_visible, alpha
    # 16-bit gray is scaled, not clipped at 255
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "g16.png")
    assert Preprocess(8, (0.0,), (1.0,)).pixels(tmp_path / "g16.png").max() == 128


def test_old_artifacts_keep_their_behaviour_and_bad_records_are_refused() -> None:
    meta = ArtifactMetadata(model="m", alpha=1.0, resolution=8, in_chans=3, mean=(0.5,) * 3,
                            std=(0.2,) * 3, classes=("a",), dataset="mnist5k")
    props = meta.to_props()
    assert json.loads(props["edgecnn.preprocess"])["resize"] == "squash"
    old = {k: v for k, v in props.items() if k != "edgecnn.preprocess"}
    assert ArtifactMetadata.from_props(old).preprocess == LEGACY  # exported before policies
    for bad in ('{"resize": "zoom"}', '{"crop": 0.5}', '[1]', '{"nope": 1}', "{"):
        with pytest.raises(EdgeCNNError, match="preprocess"):
            ArtifactMetadata.from_props({**props, "edgecnn.preprocess": bad})


def test_eval_and_the_runtime_agree_on_every_validation_image(folder: Path,
                                                               tmp_path: Path) -> None:
    """Train lenet5 on the folder, export it, and compare per-image top-1: `edgecnn eval`
    (PyTorch) against `edgecnn.runtime` (ONNX Runtime fp32) on the same files."""
    from edgecnn.runtime import load

    run = tmp_path / "run"
    data = f"imagefolder:{folder}"
    proc = run_cli("train", "lenet5", "--data", data, "--epochs", "2", "--batch-size", "8",
                   "--out", str(run), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-800:]
    proc = run_cli("eval", str(run / "best.pt"), "--json", "--no-pictures")
    assert proc.returncode == 0, proc.stderr[-800:]
    report = json.loads(proc.stdout)
    proc = run_cli("export", str(run / "best.pt"), "-o", str(tmp_path / "art"))
    assert proc.returncode == 0, proc.stderr[-800:]
    per_image = report["per_image"]
    assert len(per_image) == 2 * len(KINDS)
    with load(tmp_path / "art", runtime="onnxruntime", device="cpu") as model:
        assert model.metadata.preprocess == PHOTOS and model.preprocess.policy == PHOTOS
        preds = model.predict([row["image"] for row in per_image], topk=1)
    assert [p.label for p in preds] == [row["top1"] for row in per_image]
