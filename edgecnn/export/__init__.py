"""Export: PyTorch zoo models to self-describing ONNX artifacts (pruning, int8, fp16).

    from edgecnn.export import ExportOptions, export
    result = export(ExportOptions("mobilenet", alpha=0.5, int8=True, calib_data="mnist5k"))
    result.path, result.report        # the artifact directory and its export.json

Modules, in reading order: api (the steps of one export), targets (YAML recipes), source
(zoo model or checkpoint), inputs (calibration and held-out images), prune, onnx_io, parity
(ONNX Runtime and OpenVINO as two consumers), quantize, guard (the accuracy guard), qat,
fp16, artifact (the atomic directory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.lazy import lazy_getattr, lazy_names

_LAZY = {
    "edgecnn.export.api": ("ExportOptions", "ExportResult", "export", "check_options"),
    "edgecnn.export.targets": ("Target", "load_target", "list_targets"),
}

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.export.api import ExportOptions, ExportResult, check_options, export
    from edgecnn.export.targets import Target, list_targets, load_target

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = lazy_names(_LAZY)
