"""Offline data: built-in real data sets, users' files in standard formats, batch transforms.

    from edgecnn.data import load_dataset, Batches, BatchTransform

    train = load_dataset("mnist5k", split="train")
    transform = BatchTransform.for_dataset(train, resolution=32, in_chans=3, train=True)
    g = torch.Generator().manual_seed(0)
    for images, labels in Batches(train, 128, shuffle=True, generator=g):
        x = transform(images, generator=g)  # (128, 3, 32, 32) float32

The data sets (`load_dataset`, `ImageDataset`) need numpy and Pillow only; the loader and
the transforms need torch and are imported on first use (PEP 562), so that loading data
for an onnxruntime evaluation never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.data.datasets import (
    DataConfig,
    DataWarning,
    ImageDataset,
    channel_stats,
    load_dataset,
    stratified_split,
)
from edgecnn.lazy import lazy_getattr, lazy_names

_LAZY = {
    "edgecnn.data.loader": ("Batches",),
    "edgecnn.data.transforms": ("BatchTransform", "TransformConfig"),
}
from edgecnn.data.view import eval_view  # noqa: E402  (torch-free, like the data sets)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from edgecnn.data.loader import Batches
    from edgecnn.data.transforms import BatchTransform, TransformConfig

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = [
    "DataConfig", "DataWarning", "ImageDataset", "channel_stats", "load_dataset",
    "stratified_split", "eval_view", *lazy_names(_LAZY),
]
