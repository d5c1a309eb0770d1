"""Model-ready numpy batches from the data sets: calibration, parity inputs, held-out eval.

Images go through the runtime's own preprocessing (edgecnn.runtime.Preprocess, from the
artifact's metadata: Pillow resize, channels, mean/std), so the accuracy the export stage
reports is the accuracy a device app using edgecnn.runtime gets, to the digit.

    reader = CalibrationReader(images, batch_size=1)      # ONNX Runtime's one-method protocol
    while (feed := reader.get_next()) is not None: ...    # {"input": (1, C, R, R) float32}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_io import INPUT_NAME
from edgecnn.runtime.preprocess import Preprocess, norm_constants  # the artifact's metadata

from edgecnn.export.spec import RANDOM  # noqa: F401  (--calib-data random: latency-only int8)


@dataclass
class LabeledImages:
    """Images of one split kept as the model's uint8 pixels (N, C, R, R), normalized batch
    by batch: 1,000 images at 224 px are 600 MB as float32, 150 MB as uint8."""

    images: np.ndarray  # (N, C, R, R) uint8: Preprocess.pixels of each file or array image
    y: np.ndarray  # (N,) int64 labels
    pre: Preprocess  # the artifact's preprocessing, as the runtime applies it
    dataset: str
    split: str
    classes: tuple[str, ...] = ()  # the data set's class names (label = index)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: slice) -> np.ndarray:
        """(B, C, R, R) float32 model inputs of a slice of the images: Preprocess.normalize,
        into one new array without temporaries. A CalibrationReader takes these as it takes
        an array: batch by batch, so the split is never float32 all at once."""
        pixels = self.images[index]
        scale, shift = norm_constants(self.pre.mean, self.pre.std)
        out = np.multiply(pixels, scale[:, None, None], dtype=np.float32)
        out -= shift[:, None, None]
        return out

    def batches(self, size: int = 64, limit: int | None = None) -> Iterator[np.ndarray]:
        """(B, C, R, R) float32 model inputs, in order."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, size):
            yield self[start:min(start + size, n)]

    def array(self, limit: int | None = None) -> np.ndarray:
        return self[:len(self) if limit is None else limit]


def load_images(data: str, split: str, pre: Preprocess, *, limit: int | None = None,
                num_classes: int | None = None, seed: int = 0) -> LabeledImages:
    """`limit` images of `split` (a seeded, class-mixed sample when fewer than all)."""
    from edgecnn.data import load_dataset
    from edgecnn.data.view import model_pixels

    ds = load_dataset(data, split=split)
    if num_classes is not None and ds.num_classes != num_classes:
        raise EdgeCNNError(f"the model has {num_classes} classes, data set {data} has "
                           f"{ds.num_classes}")
    index = np.arange(len(ds))
    if limit is not None and limit < len(ds):
        index = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
    if pre.layout != "NCHW" or pre.resolution[0] != pre.resolution[1]:  # type: ignore[index]
        raise EdgeCNNError(f"held-out images are made for square NCHW inputs, got {pre.layout} "
                           f"{pre.resolution}")
    # The files (image folders) or arrays through the runtime's own steps, with the
    # artifact's policy (the policy of the data set it was trained on).
    ds = ds.subset(index)
    pixels = model_pixels(ds, pre.resolution[0], pre.in_chans,  # type: ignore[index]
                          policy=pre.policy)
    return LabeledImages(pixels, ds.labels, pre, data, split, tuple(ds.classes))


def random_images(n: int, pre: Preprocess, seed: int = 0) -> np.ndarray:
    """Standard-normal inputs: what normalized images look like on average."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *pre.input_shape), dtype=np.float32)


class CalibrationReader(CalibrationDataReader):
    """ONNX Runtime's calibration protocol over model inputs (an array, or LabeledImages
    normalized batch by batch): get_next() -> dict | None."""

    def __init__(self, x: np.ndarray | LabeledImages, batch_size: int = 1) -> None:
        self.x, self.batch_size = x, batch_size
        self._it = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.x), self.batch_size):
            yield {INPUT_NAME: self.x[start:start + self.batch_size]}

    @classmethod
    def of_batches(cls, feeds: list[dict[str, np.ndarray]]) -> CalibrationReader:
        """A reader over feeds already made (one chunk of a longer reader)."""
        reader = cls(np.zeros((0,), np.float32))
        reader._it = iter(feeds)
        return reader

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


def predict_logits(session, x: np.ndarray | LabeledImages) -> np.ndarray:  # noqa: ANN001
    """Logits of an ONNX Runtime session over images, batch by batch (the model's batch when
    it is static, EVAL_BATCH otherwise)."""
    return predict_many([session], x)[0]


EVAL_BATCH = 16  # at 224 px, batches of 16 stay in cache: 20% faster per image than 64
# Images normalized at a time. Under 32 MiB at 224 px (19 MB), so glibc serves each from the
# memory the last one freed: larger ones are mapped afresh, and on a 2-vCPU KVM guest first
# touching 154 MB (256 images) took 0.45 s, paid again for every such chunk.
CHUNK = 32


def predict_many(sessions: list, x: np.ndarray | LabeledImages) -> list[np.ndarray]:
    """Logits of several sessions over the same images, each batch made once for all."""
    steps = [s.get_inputs()[0].shape[0] for s in sessions]
    steps = [d if isinstance(d, int) else EVAL_BATCH for d in steps]
    chunks = x.batches(CHUNK) if isinstance(x, LabeledImages) else [x]
    outs: list[list[np.ndarray]] = [[] for _ in sessions]
    for chunk in chunks:
        for session, step, out in zip(sessions, steps, outs):
            out.extend(session.run(None, {INPUT_NAME: chunk[i:i + step]})[0]
                       for i in range(0, len(chunk), step))
    return [np.concatenate(o) for o in outs]
