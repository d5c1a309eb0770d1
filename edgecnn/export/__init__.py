"""Export: PyTorch zoo models to self-describing ONNX artifacts (pruning, int8, fp16).

    from edgecnn.export import ExportSpec, Int8Spec, ZooSource, export
    result = export(ExportSpec(ZooSource("mobilenet", alpha=0.5), int8=Int8Spec("mnist5k")))
    result.path, result.report        # the artifact directory and its export.json

Modules, in reading order: spec (the typed spec of one export), api (its steps), targets
(YAML recipes), source (zoo model, import path, checkpoint or module), foreign (ONNX files
from other tools), inputs (calibration and held-out images), prune, onnx_io, parity
(ONNX Runtime and OpenVINO as two consumers), quantize, guard (the accuracy guard), qat,
fp16, artifact (the atomic directory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.lazy import lazy_getattr, lazy_names

_LAZY = {
    "edgecnn.export.spec": ("ExportSpec", "ZooSource", "CheckpointSource", "ModuleSource",
                            "OnnxSource", "PruneSpec", "Int8Spec"),
    "edgecnn.export.api": ("ExportResult", "export"),
    "edgecnn.export.targets": ("Target", "load_target", "list_targets"),
}

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.export.api import ExportResult, export
    from edgecnn.export.spec import (CheckpointSource, ExportSpec, Int8Spec, ModuleSource,
                                     OnnxSource, PruneSpec, ZooSource)
    from edgecnn.export.targets import Target, list_targets, load_target

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = lazy_names(_LAZY)
