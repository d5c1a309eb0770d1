"""float16 models for GPU targets, with float32 inputs and outputs kept.

ONNX Runtime ships onnxconverter-common's converter as `onnxruntime.transformers.float16`
(it began as a copy of it); that one is used, so no extra package is needed.
keep_io_types=True puts a Cast at the input and the output: the application keeps feeding
float32 images and reading float32 logits, as with the fp32 artifact.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgecnn.export.parity import ort_runner, runner_logits


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
    """How far the fp16 logits are from the fp32 ones, both run by the runtime's ONNX Runtime
    runner on the CPU (which runs fp16 graphs through its own kernels or casts: a
    correctness check, not a speed one)."""
    a, b = (runner_logits(ort_runner(proto), x) for proto in (fp32, fp16))
    return float(np.abs(a - b).max())
