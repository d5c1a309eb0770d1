"""Image folders as a user has them (issue 24): predict DIR recurses into class folders and
scores them, naming the file and stage; unreadable images are plain lines, one per file and
one summary per split; --help gives the layout and the split rule."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.cli.main import _show_warning, main
from edgecnn.data import DataConfig, load_dataset
from tests.runtime_artifacts import export_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("truth-art")
    return export_artifact(root / "art", name="mobilenet", alpha=0.25, resolution=32,
                           dynamic_batch=True).parent


def _photos(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (24 + i, 30, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")


def test_predict_recurses_into_class_folders_and_scores_them(
        artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _photos(tmp_path / "val" / "3", 3, 0)
    _photos(tmp_path / "val" / "7" / "deeper", 2, 1)  # below a class folder: still class 7
    assert main(["predict", str(artifact), str(tmp_path / "val"), "--topk", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    preds = out["predictions"]
    assert len(preds) == 5
    truth = {p["image"]: Path(p["image"]).relative_to(tmp_path / "val").parts[0]
             for p in preds}
    hits = {c: sum(p["top"][0]["label"] == c for p in preds if truth[p["image"]] == c)
            for c in ("3", "7")}
    acc = out["accuracy"]
    assert acc["images"] == 5 and acc["correct"] == hits["3"] + hits["7"]
    assert acc["per_class"]["3"]["images"] == 3 and acc["per_class"]["7"]["correct"] == hits["7"]
    assert acc["stage"].startswith("model.onnx: as trained (not pruned), fp32")

    assert main(["predict", str(artifact), str(tmp_path / "val"), "--topk", "1"]) == 0
    text = capsys.readouterr().out
    assert f"({acc['correct']}/5) for model.onnx: as trained" in text
    row = next(line for line in text.splitlines() if line.startswith("  7 "))
    assert row.endswith(f"({hits['7']}/2)")


def test_plain_images_are_not_scored(artifact: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _photos(tmp_path / "holiday", 2, 2)  # not class names of the model: predictions only
    assert main(["predict", str(artifact), str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["predictions"]) == 2 and "accuracy" not in out


def test_unreadable_images_are_one_plain_line_each(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for cls in ("cat", "dog"):
        _photos(tmp_path / "pets" / cls, 5, 3)
    (tmp_path / "pets" / "cat" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "pets" / "dog" / "empty.jpg").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning  # what main() installs for every command
        load_dataset(f"imagefolder:{tmp_path / 'pets'}", split="train",
                     config=DataConfig(image_size=8, val_fraction=0.01))
    err = capsys.readouterr().err.splitlines()
    each = "edgecnn: warning: unreadable image skipped: "
    assert err[:2] == [f"{each}{tmp_path}/pets/cat/broken.png",
                       f"{each}{tmp_path}/pets/dog/empty.jpg"]
    assert len(err) == 3 and "skipped 2 unreadable image file(s) in the train split" in err[2]
    assert not any("DataWarning" in line or ".py:" in line for line in err)


@pytest.mark.parametrize("command", ["train", "export"])
def test_help_gives_the_layout_and_the_split_rule(command: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "PATH/train/CLASS/" in text and "PATH/val/CLASS/" in text
    assert "20% of the images held out as val" in text and "seed 0" in text
