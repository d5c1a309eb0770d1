"""A loaded model: a runner plus the preprocessing and class names it needs.

    model = edgecnn.runtime.load("exports/mobilenet-a0.5-r224")
    model.predict("cat.jpg", topk=3)   # [Prediction(ids=(281, 285, 282), labels=..., probs=...)]
    model.infer(batch)                 # class scores, (B, classes) float32
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import Runner
from edgecnn.runtime.preprocess import ImageLike, Preprocess

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.metadata import ArtifactMetadata

MAX_CHUNK = 32  # images per forward pass when the model takes any batch size


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image, most likely first."""

    ids: tuple[int, ...]
    labels: tuple[str, ...]
    probs: tuple[float, ...]  # softmax of the logits (or the model's own probabilities)

    @property
    def id(self) -> int:
        return self.ids[0]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def prob(self) -> float:
        return self.probs[0]

    def to_dict(self) -> dict[str, Any]:
        return {"top": [{"id": i, "label": lab, "prob": p}
                        for i, lab, p in zip(self.ids, self.labels, self.probs)]}


class Model:
    """What `load` returns. Its runner is active until `close()` (or the end of a `with`)."""

    def __init__(self, runner: Runner, preprocess: Preprocess,
                 metadata: ArtifactMetadata | None, classes: tuple[str, ...] | None,
                 selection: str, path: str | os.PathLike[str], *,
                 probabilities: bool = False) -> None:
        self.runner = runner
        self.preprocess = preprocess
        self.metadata = metadata  # None for an ONNX file without edgecnn metadata
        self.classes = classes  # None: labels are the class ids as text
        self.selection = selection  # how the runtime was chosen, one line
        self.path = path
        # The graph ends in Softmax: its outputs are probabilities, not logits to normalize.
        self.probabilities = probabilities
        expected = runner.input.shape[1:]
        if tuple(expected) != preprocess.input_shape and None not in expected:
            raise EdgeCNNError(f"the preprocessing makes {_shape(preprocess.input_shape)} images "
                               f"but the model takes {_shape(expected)}")
        # One inference at a time per Model: an OpenVINO infer request and a TensorRT
        # context are not safe to share between threads. Decoding and preprocessing, the
        # larger part of a photo's time, still run in parallel.
        self._infer_lock = threading.Lock()
        runner.activate()

    @property
    def runtime(self) -> str:
        """The runtime that runs it: onnxruntime, openvino or tensorrt."""
        return self.runner.name

    def describe(self) -> str:
        return self.runner.describe()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Class scores (logits, or probabilities when `self.probabilities`) for a
        preprocessed batch shaped like the model's input. A Caffe-style (B, C, 1, 1) output
        comes back as (B, C); any other output as the model gives it."""
        with self._infer_lock:  # one inference at a time per Model (threads share it)
            out = self.runner.infer(batch)
        if out.ndim == 4 and out.shape[2:] == (1, 1):
            return out.reshape(out.shape[:2])
        return out

    def predict(self, images: ImageLike | Iterable[ImageLike], topk: int = 5) -> list[Prediction]:
        """Top-k classes with probabilities for one image or several (softmax of the logits;
        a graph that ends in Softmax already gives probabilities: they are used as they are)."""
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise EdgeCNNError(f"topk must be a positive integer, got {topk!r}")
        items = _as_list(images)
        logits = np.concatenate([self._forward(chunk) for chunk in self._chunks(items)])
        if logits.ndim != 2:
            raise EdgeCNNError(f"the model's output has shape {logits.shape}; predict needs "
                               "(batch, classes) scores (use infer for other outputs)")
        if self.classes is not None and len(self.classes) != logits.shape[1]:
            raise EdgeCNNError(f"{len(self.classes)} class names for {logits.shape[1]} outputs")
        probs = logits.astype(np.float64) if self.probabilities else _softmax(logits)
        k = min(topk, probs.shape[1])  # top-5 of 3 classes is all 3
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [Prediction(ids=tuple(int(i) for i in row),
                           labels=tuple(self._label(int(i)) for i in row),
                           probs=tuple(float(p[i]) for i in row)) for row, p in zip(top, probs)]

    def _label(self, index: int) -> str:
        return self.classes[index] if self.classes is not None else str(index)

    def _chunks(self, items: list[ImageLike]) -> Iterable[list[ImageLike]]:
        fixed = self.runner.input.shape[0]
        step = fixed if fixed is not None else MAX_CHUNK
        for start in range(0, len(items), step):
            yield items[start:start + step]

    def _forward(self, chunk: list[ImageLike]) -> np.ndarray:
        batch = self.preprocess(chunk).astype(self.runner.input.dtype, copy=False)
        fixed = self.runner.input.shape[0]
        if fixed is not None and len(chunk) < fixed:  # a static batch of 8 fed 3 images: pad
            pad = np.zeros((fixed - len(chunk), *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        return self.infer(batch)[:len(chunk)]

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self.metadata.model if self.metadata else os.fspath(self.path)
        return f"<Model {name} on {self.describe()}>"


def _as_list(images: Any) -> list[ImageLike]:
    """One image (path, Pillow image, (H, W[, C]) array) or many (list, (N, H, W, C) array)."""
    if isinstance(images, (str, os.PathLike)) or hasattr(images, "getbands"):
        return [images]
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        return [images]
    try:
        items = list(images)  # a list, or an (N, H, W, C) array's images
    except TypeError:
        raise EdgeCNNError(f"expected an image or a list of images, got "
                           f"{type(images).__name__}") from None
    if not items:
        raise EdgeCNNError("no images given")
    return items


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _shape(shape: tuple[int | None, ...]) -> str:
    return "x".join("N" if d is None else str(d) for d in shape)
