"""PyTorch -> one ONNX file that ONNX Runtime, OpenVINO and TensorRT all accept.

Two torch exporters, picked by opset rather than by a flag:
- opset >= 18: the dynamo exporter (torch.export based, the maintained path). It folds
  BatchNorm into convolutions and optimizes the graph; weights are kept in the one file.
- opset < 18 (e.g. 13 for JetPack 4.6's TensorRT 8.2): the TorchScript exporter, because the
  dynamo exporter cannot down-convert reductions below opset 18.
Either way the IR version is capped (onnx 1.23 writes IR 14, ONNX Runtime 1.31 reads <= 13).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from edgecnn.errors import EdgeCNNError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DYNAMO_MIN_OPSET = 18
MAX_IR_VERSION = 10  # ORT >= 1.16, OpenVINO 2024+, TensorRT 10 all read IR 10 (opset <= 21)


def to_onnx_proto(
    model: nn.Module,
    sample: torch.Tensor,
    *,
    opset: int = DYNAMO_MIN_OPSET,
    dynamic_batch: bool = False,
    max_ir_version: int = MAX_IR_VERSION,
) -> onnx.ModelProto:
    """Export `model` (put in eval mode) for an input like `sample` (B, C, H, W)."""
    model = model.eval()
    if opset >= DYNAMO_MIN_OPSET:
        proto = _export_dynamo(model, sample, opset, dynamic_batch)
    else:
        proto = _export_torchscript(model, sample, opset, dynamic_batch)
    proto.ir_version = min(proto.ir_version, max_ir_version)
    return proto


def _export_dynamo(model: nn.Module, sample: torch.Tensor, opset: int,
                   dynamic_batch: bool) -> onnx.ModelProto:
    dynamic_shapes = ({"x": {0: torch.export.Dim("batch")}},) if dynamic_batch else None
    with _quiet():
        program = torch.onnx.export(
            model, (sample,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=_named(model, dynamic_shapes),
            optimize=True, verbose=False, report=False,
        )
    if program is None:  # pragma: no cover - torch API contract
        raise EdgeCNNError("the ONNX exporter returned nothing")
    return program.model_proto


def _export_torchscript(model: nn.Module, sample: torch.Tensor, opset: int,
                        dynamic_batch: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with _quiet():
        torch.onnx.export(model, (sample,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _named(model: nn.Module, dynamic_shapes: tuple | None) -> dict | tuple | None:
    """dynamic_shapes keyed by the name of forward's first argument (x, input, ...)."""
    if dynamic_shapes is None:
        return None
    import inspect

    first = next(iter(inspect.signature(model.forward).parameters))
    return {first: dynamic_shapes[0]["x"]}


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


def save_onnx(proto: onnx.ModelProto, path: str | Path) -> Path:
    """Write one self-contained file (no side .onnx.data; the protobuf limit is 2 GB)."""
    path = Path(path)
    if proto.ByteSize() >= 2**31:
        raise EdgeCNNError(f"{path.name}: model over 2 GB cannot be stored in one ONNX file")
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path
