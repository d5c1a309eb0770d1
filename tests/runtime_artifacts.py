"""Small real artifacts for the runtime tests, made the way the export stage makes them.

A zoo model with BatchNorm statistics from a batch (so logits are O(1) and a 1e-4 tolerance
means something), exported with edgecnn.export.onnx_io, its ArtifactMetadata written into
metadata_props, saved as one file, through `to_onnx_proto` as `edgecnn export` does (the
TorchScript exporter first, the dynamo one where it lacks an op).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SKLEARN_IMAGES = ("china.jpg", "flower.jpg")  # real photos shipped inside scikit-learn
CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def sample_images() -> list[Path]:
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    return [folder / name for name in SKLEARN_IMAGES]


def build_model(name: str, alpha: float = 1.0, resolution: int = 32, seed: int = 0):  # noqa: ANN201
    import torch

    from edgecnn.registry import create_model
    from tests.conftest import calibrate_bn

    torch.manual_seed(seed)
    model = create_model(name, alpha=alpha, num_classes=len(CLASSES))
    calibrate_bn(model, torch.randn(16, 3, resolution, resolution))
    return model


def export_artifact(model, directory: Path, *, name: str,  # noqa: ANN001
                    alpha: float, resolution: int, opset: int = 18, dynamic_batch: bool = False,
                    metadata: bool = True, filename: str = "model.onnx") -> Path:
    """Write `directory/filename` and return its path."""
    import torch

    from edgecnn.export.onnx_io import save_onnx, to_onnx_proto
    from edgecnn.metadata import ArtifactMetadata

    sample = torch.randn(2 if dynamic_batch else 1, 3, resolution, resolution)
    proto = to_onnx_proto(model, sample, opset=opset, dynamic_batch=dynamic_batch)
    if metadata:
        spec = model.spec
        meta = ArtifactMetadata(model=name, alpha=alpha, resolution=resolution, in_chans=3,
                                mean=spec.mean, std=spec.std, classes=CLASSES,
                                dataset="synthetic", edgecnn_version="test")
        for key, value in meta.to_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    directory.mkdir(parents=True, exist_ok=True)
    return save_onnx(proto, directory / filename)


def torch_logits(model, batch: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()
