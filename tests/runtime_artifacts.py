"""Small real artifacts for the runtime tests, made by the real export path.

`export_artifact` runs `edgecnn.export.export` on a zoo name, exactly as `edgecnn export NAME`
does: initialized weights with BatchNorm statistics from a batch (so logits are O(1) and a
1e-4 tolerance means something), onnxslim, BN folding, metadata, the checker, the parity
check in ONNX Runtime and OpenVINO, export.json. `source_model` is the PyTorch model that
export used (the same production code, the same seed), the reference the tests compare
against. An export of the same options is made once per test session and copied after.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SKLEARN_IMAGES = ("china.jpg", "flower.jpg")  # real photos shipped inside scikit-learn
CLASSES = tuple(str(i) for i in range(10))  # what an export without a checkpoint names them
_CACHE: dict[tuple, Path] = {}


def sample_images() -> list[Path]:
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    return [folder / name for name in SKLEARN_IMAGES]


def source_model(name: str, alpha: float = 1.0, resolution: int = 32, seed: int = 0):  # noqa: ANN201
    """The PyTorch model `export_artifact` exports for these options (eval mode)."""
    from edgecnn.export.source import resolve_source

    return resolve_source(name, alpha=alpha, resolution=resolution, num_classes=len(CLASSES),
                          seed=seed).model


def export_artifact(directory: Path, *, name: str, alpha: float = 1.0, resolution: int = 32,
                    dynamic_batch: bool = False, seed: int = 0, metadata: bool = True) -> Path:
    """`edgecnn export` of zoo model `name` into `directory`; returns its model.onnx.
    metadata=False: the same file with edgecnn's metadata_props removed, as a user's own
    ONNX file would come (no artifact directory around it either)."""
    key = (name, alpha, resolution, dynamic_batch, seed)
    if key not in _CACHE:
        from edgecnn.export import ExportOptions, export

        out = directory.parent / f".export-{len(_CACHE)}-{directory.name}"
        export(ExportOptions(name, alpha=alpha, resolution=resolution, num_classes=len(CLASSES),
                             dynamic_batch=dynamic_batch, output=str(out), seed=seed))
        _CACHE[key] = out
    if metadata:
        shutil.copytree(_CACHE[key], directory)
        return directory / "model.onnx"
    import onnx

    proto = onnx.load(str(_CACHE[key] / "model.onnx"))
    del proto.metadata_props[:]
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(directory / "model.onnx"))
    return directory / "model.onnx"


def torch_logits(model, batch: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()
