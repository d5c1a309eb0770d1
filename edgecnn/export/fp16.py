"""float16 models for GPU targets, with float32 inputs and outputs kept.

ONNX Runtime ships onnxconverter-common's converter as `onnxruntime.transformers.float16`
(it began as a copy of it), so that one is used and onnxconverter-common is not a
dependency.
keep_io_types=True puts a Cast at the input and the output: the application keeps feeding
float32 images and reading float32 logits, as with the fp32 artifact.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgecnn.export.inputs import predict_logits
from edgecnn.export.parity import ort_session


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    out = convert_float_to_float16(model, keep_io_types=True)
    out.ir_version = min(out.ir_version, proto.ir_version)
    _topological_sort(out.graph)  # the converter appends its input Casts at the end
    return out


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after the producers of its inputs (ONNX requires it)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError("the fp16 graph has a cycle or a dangling input")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def fp16_max_abs(fp32: onnx.ModelProto, fp16: onnx.ModelProto, x: np.ndarray) -> float:
    """How far the fp16 logits are from the fp32 ones (ONNX Runtime CPU runs fp16 graphs
    through its own kernels or casts: a correctness check here, not a speed one)."""
    a = predict_logits(ort_session(fp32), x)
    b = predict_logits(ort_session(fp16), x)
    return float(np.abs(a - b).max())
