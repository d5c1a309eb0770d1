"""A data set as a model sees it at evaluation: each image through the runtime's preprocessing.

    view = eval_view(val_set, resolution=32, in_chans=3)   # ImageDataset, images (N, 3, 32, 32)
    # normalize view.images (edgecnn.data.transforms.normalize) and the model sees exactly
    # the tensor edgecnn.runtime feeds an ONNX file of it

Image folders are decoded again from their files (`ImageDataset.files`) by
`Preprocess.pixels`, with the data set's policy: what a device app gets from the same file.
Array data sets (MNIST, digits, CIFAR-10) go image by image through the same function, as a
PNG of those pixels would. One definition, so training's validation accuracy, `edgecnn
eval`, the export's guard and bench's accuracy are all the runtime's.
Views are cached on the data set they come from (one decode per resolution).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edgecnn.data.datasets import ImageDataset, convert_stats
from edgecnn.errors import EdgeCNNError
from edgecnn.metadata import PreprocessPolicy
from edgecnn.runtime.preprocess import Preprocess


def eval_view(dataset: ImageDataset, resolution: int, in_chans: int,
              workers: int = 0) -> ImageDataset:
    """`dataset` with images replaced by the model's pixels (N, in_chans, R, R) uint8."""
    if getattr(dataset, "view_of", None) == (resolution, in_chans):
        return dataset
    cache = dataset.__dict__.setdefault("_views", {})
    key = (resolution, in_chans)
    if key not in cache:
        mean, std = convert_stats(dataset.mean, dataset.std, in_chans)
        view = ImageDataset(dataset.name, dataset.split,
                            model_pixels(dataset, resolution, in_chans, workers), dataset.labels,
                            dataset.classes, mean, std, allow_hflip=dataset.allow_hflip,
                            augment=dataset.augment, skipped=dataset.skipped,
                            files=dataset.files)
        view.__dict__["view_of"] = key
        cache[key] = view
    return cache[key]


def model_pixels(dataset: ImageDataset, resolution: int, in_chans: int, workers: int = 0,
                 policy: PreprocessPolicy | None = None) -> np.ndarray:
    """(N, in_chans, R, R) uint8: `Preprocess.pixels` of every image, in order, with
    `policy` (an artifact's) or the data set's own."""
    if in_chans not in (1, 3):
        raise EdgeCNNError(f"the runtime's preprocessing feeds 1 or 3 channels, not {in_chans}")
    pre = Preprocess(resolution, (0.0,) * in_chans, (1.0,) * in_chans, policy=policy or dataset.preprocess)
    if dataset.files is not None:
        sources: list = list(dataset.files)
    else:  # (N, C, H, W) -> (H, W) or (H, W, 3) per image
        hwc = dataset.images.transpose(0, 2, 3, 1)
        sources = [im[..., 0] if im.shape[-1] == 1 else im for im in hwc]
    out = np.empty((len(sources), in_chans, resolution, resolution), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for i, pixels in enumerate(pool.map(pre.pixels, sources)):  # Pillow drops the GIL
            out[i] = pixels.transpose(2, 0, 1)
    return out
