"""PyTorch -> one ONNX file that ONNX Runtime, OpenVINO and TensorRT all accept.

Two torch exporters:
- the TorchScript exporter first: for these CNNs it folds BatchNorm into the convolutions
  and writes every opset from 7 up, in 0.6 s for MobileNet alpha 0.5 at 224 (the export
  budget is 15 s for fp32 + int8);
- the dynamo exporter (torch.export based) when the TorchScript one fails: 4-8 s for the same
  model, opset >= 18 only (it cannot down-convert reductions below 18).
Both export adaptive average pools at sizes ONNX has no operator for through
export/pools.py (AlexNet and VGG below 224 px), at the target's opset.
Then `simplify` (onnxslim: constant folding, Conv+BN fusion), export/bnfold.py's
`fold_batchnorms` (the BNs no conv precedes: DenseNet-BC, pre-activation ResNets), and
`finish`: the IR version capped to what the target reads (onnx 1.23 writes IR 14; ONNX
Runtime 1.31 reads <= 13, TensorRT 8.2 <= 7), our metadata in `metadata_props`, and
`onnx.checker.check_model(full_check=True)`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

import onnx

from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:  # torch is imported where a model is exported: the graph helpers below
    import torch  # (finish, check, save_onnx, batch_dynamic) serve `edgecnn tune` on a
    from torch import nn  # device without torch

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DYNAMO_MIN_OPSET = 18
MAX_IR_VERSION = 9  # when no recipe says: the cap of export/*.yaml (ORT >= 1.15, OpenVINO 2024)


def to_onnx_proto(
    model: nn.Module,
    sample: torch.Tensor,
    *,
    opset: int = 17,
    dynamic_batch: bool = False,
    max_ir_version: int = MAX_IR_VERSION,
) -> onnx.ModelProto:
    """Export `model` (put in eval mode) for an input like `sample` (B, C, H, W)."""
    from edgecnn.export.pools import exportable_pools  # torch: here, not for `edgecnn tune`

    model = model.eval()
    with exportable_pools(model):
        try:
            proto = _export_torchscript(model, sample, opset, dynamic_batch)
        except Exception as exc:  # an op the TorchScript exporter lacks: try the dynamo one
            if opset < DYNAMO_MIN_OPSET:
                raise EdgeCNNError(f"ONNX export at opset {opset} failed "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                                   f"); opset {DYNAMO_MIN_OPSET} or above may work") from None
            proto = _export_dynamo(model, sample, opset, dynamic_batch)
    proto.ir_version = min(proto.ir_version, max_ir_version)
    return proto


def _export_torchscript(model: nn.Module, sample: torch.Tensor, opset: int,
                        dynamic_batch: bool) -> onnx.ModelProto:
    import torch

    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with _quiet(), torch.no_grad():
        torch.onnx.export(model, (sample,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _export_dynamo(model: nn.Module, sample: torch.Tensor, opset: int,
                   dynamic_batch: bool) -> onnx.ModelProto:
    import inspect

    import torch

    dynamic_shapes = None
    if dynamic_batch:  # keyed by the name of forward's first argument (x, input, ...)
        first = next(iter(inspect.signature(model.forward).parameters))
        dynamic_shapes = {first: {0: torch.export.Dim("batch")}}
    with _quiet():
        program = torch.onnx.export(
            model, (sample,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes,
            optimize=True, verbose=False, report=False,
        )
    if program is None:  # pragma: no cover - torch API contract
        raise EdgeCNNError("the ONNX exporter returned nothing")
    return program.model_proto


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warnings for things that are not our user's concern."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim: constant folding, dead and identity nodes out, Conv+BN fusion."""
    import onnxslim

    ir_version = proto.ir_version
    with _quiet(), contextlib.redirect_stderr(io.StringIO()):
        slim = onnxslim.slim(proto)
    slim.ir_version = min(slim.ir_version, ir_version)
    return slim


def finish(proto: onnx.ModelProto, props: dict[str, str], *,
           max_ir_version: int) -> onnx.ModelProto:
    """A copy of `proto` with the IR version capped, metadata_props attached, and the full
    checker run. A copy: the caller's graph (model.onnx's, quantized into model.int8.onnx)
    must not take another file's metadata."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    proto = copy
    proto.ir_version = min(proto.ir_version, max_ir_version)
    # ONNX Runtime's pre-processing declares every domain it knows (com.microsoft.nchwc,
    # ai.onnx.training...); a strict consumer (TensorRT 8's parser) needs only those used.
    used = {n.domain for n in proto.graph.node} | {""}
    keep = [o for o in proto.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    check(proto)
    return proto


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker with shape inference (full_check); any finding is an export bug. On the
    graph with its weights as typed inputs (`weightless`): the weights' bytes are read by
    both runtimes in the parity check, and serializing them for the checker cost VGG's
    export 2 s."""
    try:
        onnx.checker.check_model(weightless(proto), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise EdgeCNNError(f"the exported graph fails onnx.checker: "
                           f"{str(exc).splitlines()[0][:160]}") from None


def weightless(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its large initializers turned into typed inputs of the same shape, for
    what needs their dims and not their bytes (shape inference, the checker). Small ones (a
    Reshape's target shape) keep their values."""
    import numpy as np

    big = [t for t in proto.graph.initializer if int(np.prod(t.dims)) > 64]
    names = {t.name for t in big}
    declared = {v.name for v in proto.graph.input}  # IR 3: initializers are inputs too
    graph = onnx.helper.make_graph(
        proto.graph.node, proto.graph.name,
        [*proto.graph.input, *(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                               for t in big if t.name not in declared)],
        proto.graph.output, [t for t in proto.graph.initializer if t.name not in names],
        value_info=proto.graph.value_info, sparse_initializer=proto.graph.sparse_initializer)
    model = onnx.helper.make_model(graph, opset_imports=proto.opset_import,
                                   ir_version=proto.ir_version)
    model.functions.extend(proto.functions)
    return model


def onnx_layers(proto: onnx.ModelProto) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(node name, op type, output shape, multiply-adds at batch 1) of each Conv, Gemm and
    MatMul node whose output shape inference can tell: the papers' convention, as
    edgecnn.profile counts a torch module (BN, activations, pooling and additions not
    counted), without a torch forward pass."""
    import numpy as np

    inferred = onnx.shape_inference.infer_shapes(weightless(proto), data_prop=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.graph.value_info, *inferred.graph.input,
                        *inferred.graph.output)}
    weights = {t.name: list(t.dims) for t in proto.graph.initializer}
    layers = []
    for node in proto.graph.node:
        out = shapes.get(node.output[0])
        if not out or any(d <= 0 for d in out[1:]):
            continue
        per_out = int(np.prod(out[1:]))
        macs = None
        if node.op_type == "Conv" and node.input[1] in weights:
            macs = per_out * int(np.prod(weights[node.input[1]][1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0]) or weights.get(node.input[0])
            if a:
                trans = next((at.i for at in node.attribute if at.name == "transA"), 0)
                macs = per_out * int(a[-2] if trans else a[-1])
        if macs is not None:
            layers.append((node.name, node.op_type, (1, *out[1:]), macs))
    return layers


def save_onnx(proto: onnx.ModelProto, path: str | Path) -> Path:
    """Write one self-contained file (no side .onnx.data; the protobuf limit is 2 GB)."""
    path = Path(path)
    if proto.ByteSize() >= 2**31:
        raise EdgeCNNError(f"{path.name}: model over 2 GB cannot be stored in one ONNX file")
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def batch_dynamic(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy whose batch dimension is free, or None when the graph fixes it inside (a
    Reshape to a constant shape). For calibration and evaluation, which run faster on
    batches than image by image; the artifact keeps the batch the user asked for."""
    import numpy as np

    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    try:
        with OrtRunner(model.SerializeToString(), "cpu", OrtOptions(threads=1, quiet=True)) as r:
            out = r.infer(np.zeros((2, *shape), np.float32))
    except EdgeCNNError:  # a refusal (a Reshape to a constant batch): keep batch 1
        return None
    return model if out.shape[0] == 2 else None


def load_onnx(path: str | Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)
