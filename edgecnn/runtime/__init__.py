"""The torch-free runtime: run exported artifacts on a device with numpy, Pillow and one of
ONNX Runtime, OpenVINO or TensorRT.

    from edgecnn.runtime import load
    model = load("exports/mobilenet-a0.5-r224")          # runtime="auto", device="auto"
    for p in model.predict(["cat.jpg", "dog.jpg"], topk=3):
        print(p.label, p.prob)
    logits = model.infer(batch)                           # (B, 3, 224, 224) float32

This package never imports torch or the zoo (a test checks it in a fresh interpreter); the
runtimes are imported only when chosen, so a missing one never breaks the others. Every
user error is one `EdgeCNNError` line. Runners: `OrtRunner` (ort_runner.py), `OvRunner`
(ov_runner.py), `TrtRunner` (trt_runner.py), one interface (base.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.errors import EdgeCNNError
from edgecnn.lazy import lazy_getattr, lazy_names
from edgecnn.runtime.base import OnnxRunner, Runner, TensorSpec
from edgecnn.runtime.loader import RUNTIMES, load, runner_class, select_runtime
from edgecnn.runtime.model import Model, Prediction
from edgecnn.runtime.onnx_file import OnnxInfo, read_onnx
from edgecnn.runtime.preprocess import Preprocess

# Runner classes by name, imported on first use (their runtime may not be installed).
_LAZY = {
    "edgecnn.runtime.ort_runner": ("OrtRunner", "OrtOptions"),
    "edgecnn.runtime.ov_runner": ("OvRunner", "OvOptions"),
    "edgecnn.runtime.trt_runner": ("TrtRunner", "TrtOptions"),
}

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner
    from edgecnn.runtime.trt_runner import TrtOptions, TrtRunner

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = ["RUNTIMES", "EdgeCNNError", "Model", "OnnxInfo", "OnnxRunner", "Prediction",
           "Preprocess", "Runner", "TensorSpec", "load", "read_onnx", "runner_class",
           "select_runtime", *lazy_names(_LAZY)]
