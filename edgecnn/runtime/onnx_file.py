"""Read what the runtime needs from an ONNX file, without the `onnx` package, before any
native library sees it.

Why a reader of our own: `onnx` is not a dependency of the runtime (a device installs numpy,
Pillow and one runtime), and a file must be checked before it reaches ONNX Runtime, OpenVINO
or TensorRT: that it is an ONNX model at all (a JPEG renamed .onnx, a truncated download),
and that no tensor points at external data outside the model's own directory (a model file
must not make the runtime read /etc/passwd or ../../secrets as weights).

The protobuf wire format is simple: a message is a run of (field number, wire type, value)
records; varints for integers, length-prefixed bytes for strings and sub-messages. We decode
only the fields listed below (numbers from onnx.proto), skip the rest, and never touch weight
bytes (the file is mapped, so their pages are never even read): reading a 5 MB MobileNet
takes well under a millisecond of Python per node.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import file_sha256

# Wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_DEPTH = 32  # nested subgraphs (If/Loop bodies); deeper is not a model we run
_MAX_IR_VERSION = 64  # IR 14 is current (2025); far beyond that the bytes are not ONNX

# ONNX TensorProto.DataType -> numpy dtype name.
ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
              7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
              13: "uint64"}


class _WireError(Exception):
    """Malformed protobuf; turned into one EdgeCNNError naming the file."""


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, element type and shape (None = dynamic dimension)."""

    name: str
    elem_type: str  # numpy dtype name, or "onnx type N" for types numpy lacks
    shape: tuple[int | None, ...] | None  # None when the file declares no shape


# Ops that only reshape: a Softmax followed by these still ends the graph in probabilities.
_PASS_THROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


@dataclass
class OnnxInfo:
    path: Path | None  # None when the model was given as bytes
    ir_version: int
    opsets: dict[str, int]  # domain ("" = ai.onnx) -> version
    producer: str
    metadata_props: dict[str, str]
    inputs: list[TensorInfo]  # graph inputs that are not initializers
    outputs: list[TensorInfo]
    op_types: set[str] = field(default_factory=set)
    external_data: set[str] = field(default_factory=set)  # locations, relative to the file
    # The first output is a Softmax's (through reshapes only): class probabilities already,
    # so no second softmax goes on top.
    softmax_output: bool = False

    @property
    def source(self) -> str:
        """The file's name for messages, or "model bytes"."""
        return str(self.path) if self.path is not None else "model bytes"

    @property
    def has_qdq(self) -> bool:
        """QuantizeLinear/DequantizeLinear pairs: an explicitly quantized (int8) graph."""
        return {"QuantizeLinear", "DequantizeLinear"} <= self.op_types

    @property
    def layout(self) -> str:
        """"NHWC" when the one input's shape says so (1 or 3 channels in the last dimension
        and not in the second: TensorFlow/Keras/TFLite exports), else "NCHW"."""
        shape = self.inputs[0].shape if len(self.inputs) == 1 else None
        if shape and len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3):
            return "NHWC"
        return "NCHW"

    def sha256(self) -> str:
        if self.path is None:
            raise EdgeCNNError("model bytes have no file to hash")
        return file_sha256(self.path)


def read_onnx(path: str | os.PathLike[str]) -> OnnxInfo:
    """Parse and check an ONNX file; every problem is one EdgeCNNError naming the file.

    The file is mapped, not read: only the fields below are decoded, so the pages holding
    weights are never brought in (the cost follows the graph's structure, not the file's
    size)."""
    path = Path(path)
    if not path.exists():
        raise EdgeCNNError(f"{path}: no such file")
    if not path.is_file():
        raise EdgeCNNError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise EdgeCNNError(f"{path}: empty file, not an ONNX model")
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise EdgeCNNError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = _parse(memoryview(mapped), path)
    finally:
        # A view still alive (none should be: _parse keeps no slice) keeps the map open
        # until it is collected; never fail a good read on that.
        with contextlib.suppress(BufferError):
            mapped.close()
    _check_external_data(info, path)
    return info


def parse_onnx(data: bytes) -> OnnxInfo:
    """The same checks on a serialized model in memory (what export hands the runners).
    Bytes cannot point at external data: there is no directory to resolve it against."""
    if not data:
        raise EdgeCNNError("model bytes: empty, not an ONNX model")
    info = _parse(memoryview(data), None)
    if info.external_data:
        raise EdgeCNNError("model bytes refer to external data "
                           f"({sorted(info.external_data)[0][:80]!r}); pass the file's path")
    return info


def _parse(buf: memoryview, path: Path | None) -> OnnxInfo:
    name = str(path) if path is not None else "model bytes"
    try:
        return _model(buf, path)
    except _WireError as exc:
        problem = str(exc)  # raised below, outside this block: no traceback keeps `buf` alive
    raise EdgeCNNError(f"{name}: not a valid ONNX model (truncated or another format: "
                       f"{problem})")


def _check_external_data(info: OnnxInfo, path: Path) -> None:
    """External weights must sit in the model's directory (or below it), nowhere else."""
    base = path.resolve().parent
    for location in sorted(info.external_data):
        name = repr(location[:80])
        if not location or "\x00" in location or os.path.isabs(location) or "\\" in location:
            raise EdgeCNNError(f"{path}: refusing external data location {name}")
        target = (base / location).resolve()
        if not target.is_relative_to(base):
            raise EdgeCNNError(f"{path}: refusing external data {name} outside the "
                               "model's directory")
        if not target.is_file():
            raise EdgeCNNError(f"{path}: external data file {name} is missing")


# --- the wire format ---------------------------------------------------------------------

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value): an int for numbers, a memoryview for LEN fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if size > len(buf) - pos:
                raise _WireError("a field runs past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if pos + width > len(buf):
                raise _WireError("a fixed-width field runs past the end")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:  # 3/4: deprecated groups, 6/7: invalid; ONNX uses neither
            raise _WireError(f"wire type {wire}")
        yield number, wire, value


def _expect(wire: int, want: int, what: str) -> None:
    if wire != want:
        raise _WireError(f"{what} has wire type {wire}, expected {want}")


def _text(value: int | memoryview, what: str) -> str:
    if not isinstance(value, memoryview):
        raise _WireError(f"{what} is not a string")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise _WireError(f"{what} is not UTF-8") from None


def _model(buf: memoryview, path: Path | None) -> OnnxInfo:
    """ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8,
    metadata_props=14, functions=25."""
    ir_version, producer, opsets, props = None, "", {}, {}
    graph: memoryview | None = None
    functions: list[memoryview] = []
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(wire, _VARINT, "ir_version")
            ir_version = value
        elif number == 2:
            _expect(wire, _LEN, "producer_name")
            producer = _text(value, "producer_name")
        elif number == 7:
            _expect(wire, _LEN, "graph")
            graph = value  # type: ignore[assignment]
        elif number == 8:
            _expect(wire, _LEN, "opset_import")
            domain, version = _opset(value)  # type: ignore[arg-type]
            opsets[domain] = version
        elif number == 14:
            _expect(wire, _LEN, "metadata_props")
            key, text = _entry(value)  # type: ignore[arg-type]
            props[key] = text
        elif number == 25:
            _expect(wire, _LEN, "functions")
            functions.append(value)  # type: ignore[arg-type]
    if not isinstance(ir_version, int) or not 1 <= ir_version <= _MAX_IR_VERSION:
        raise _WireError("no valid ir_version")
    if graph is None:
        raise _WireError("no graph")
    if "" not in opsets and "ai.onnx" not in opsets:
        raise _WireError("no ai.onnx opset_import")
    info = OnnxInfo(path=path, ir_version=ir_version, opsets=opsets, producer=producer,
                    metadata_props=props, inputs=[], outputs=[])
    _graph(graph, info, depth=0, top=True)
    for function in functions:
        for number, wire, value in _fields(function):
            if number == 7:  # FunctionProto.node
                _expect(wire, _LEN, "function node")
                _node(value, info, depth=1)  # type: ignore[arg-type]
    return info


def _opset(buf: memoryview) -> tuple[str, int]:
    """OperatorSetIdProto: domain=1, version=2."""
    domain, version = "", 0
    for number, wire, value in _fields(buf):
        if number == 1:
            domain = _text(value, "opset domain")
        elif number == 2:
            _expect(wire, _VARINT, "opset version")
            version = value  # type: ignore[assignment]
    return domain, version


def _entry(buf: memoryview) -> tuple[str, str]:
    """StringStringEntryProto: key=1, value=2."""
    key = text = ""
    for number, _wire, value in _fields(buf):
        if number == 1:
            key = _text(value, "metadata key")
        elif number == 2:
            text = _text(value, "metadata value")
    return key, text


def _graph(buf: memoryview, info: OnnxInfo, depth: int, top: bool = False) -> None:
    """GraphProto: node=1, initializer=5, input=11, output=12, sparse_initializer=15."""
    if depth > _MAX_DEPTH:
        raise _WireError("subgraphs nested too deeply")
    inputs, outputs, initializers = [], [], set()
    producers: dict[str, tuple[str, list[str]]] = {}  # output -> (op_type, inputs), top only
    for number, wire, value in _fields(buf):
        if number in (1, 5, 11, 12, 15):
            _expect(wire, _LEN, f"graph field {number}")
        if number == 1:
            op, node_in, node_out = _node(value, info, depth)  # type: ignore[arg-type]
            if top:
                producers.update((name, (op, node_in)) for name in node_out)
        elif number == 5:
            initializers.add(_tensor(value, info))  # type: ignore[arg-type]
        elif number == 15:
            _sparse(value, info)  # type: ignore[arg-type]
        elif number == 11 and top:
            inputs.append(_value_info(value))  # type: ignore[arg-type]
        elif number == 12 and top:
            outputs.append(_value_info(value))  # type: ignore[arg-type]
    if top:
        # Before IR 4 initializers were also listed as inputs; they are weights, not inputs.
        info.inputs = [t for t in inputs if t.name not in initializers]
        info.outputs = outputs
        info.softmax_output = bool(outputs) and _ends_in_softmax(outputs[0].name, producers)


def _ends_in_softmax(name: str, producers: dict[str, tuple[str, list[str]]]) -> bool:
    for _ in range(len(producers) + 1):  # a chain, not a cycle: at most one step per node
        if name not in producers:
            return False
        op, inputs = producers[name]
        if op == "Softmax":
            return True
        if op not in _PASS_THROUGH or not inputs:
            return False
        name = inputs[0]  # the data input (Reshape's second input is the shape)
    return False


def _node(buf: memoryview, info: OnnxInfo, depth: int) -> tuple[str, list[str], list[str]]:
    """NodeProto: input=1, output=2, op_type=4, attribute=5 -> (op_type, inputs, outputs)."""
    op, inputs, outputs = "", [], []
    for number, wire, value in _fields(buf):
        if number == 1:
            inputs.append(_text(value, "node input"))
        elif number == 2:
            outputs.append(_text(value, "node output"))
        elif number == 4:
            op = _text(value, "op_type")
            info.op_types.add(op)
        elif number == 5:
            _expect(wire, _LEN, "attribute")
            _attribute(value, info, depth)  # type: ignore[arg-type]
    return op, inputs, outputs


def _attribute(buf: memoryview, info: OnnxInfo, depth: int) -> None:
    """AttributeProto: t=5, g=6, tensors=10, graphs=11, sparse_tensor=22, sparse_tensors=23
    (the fields that can hold tensors, hence external data)."""
    for number, wire, value in _fields(buf):
        if number in (5, 6, 10, 11, 22, 23):
            _expect(wire, _LEN, f"attribute field {number}")
        if number in (5, 10):
            _tensor(value, info)  # type: ignore[arg-type]
        elif number in (6, 11):
            _graph(value, info, depth + 1)  # type: ignore[arg-type]
        elif number in (22, 23):
            _sparse(value, info)  # type: ignore[arg-type]


def _sparse(buf: memoryview, info: OnnxInfo) -> None:
    """SparseTensorProto: values=1, indices=2 (both TensorProto)."""
    for number, wire, value in _fields(buf):
        if number in (1, 2):
            _expect(wire, _LEN, "sparse tensor part")
            _tensor(value, info)  # type: ignore[arg-type]


def _tensor(buf: memoryview, info: OnnxInfo) -> str:
    """TensorProto: name=8, external_data=13, data_location=14 (1 = EXTERNAL).
    Returns the name; records the external data location, if any."""
    name, location, external = "", None, False
    for number, wire, value in _fields(buf):
        if number == 8:
            name = _text(value, "tensor name")
        elif number == 13:
            _expect(wire, _LEN, "external_data")
            key, text = _entry(value)  # type: ignore[arg-type]
            if key == "location":
                location = text
        elif number == 14:
            _expect(wire, _VARINT, "data_location")
            external = value == 1
    if external or location is not None:
        if location is None:
            raise _WireError(f"tensor {name!r} is external but names no location")
        info.external_data.add(location)
    return name


def _value_info(buf: memoryview) -> TensorInfo:
    """ValueInfoProto: name=1, type=2 -> TypeProto: tensor_type=1 -> elem_type=1, shape=2."""
    name, elem, shape = "", 0, None
    for number, wire, value in _fields(buf):
        if number == 1:
            name = _text(value, "input name")
        elif number == 2 and isinstance(value, memoryview):
            for n2, _w2, v2 in _fields(value):
                if n2 == 1 and isinstance(v2, memoryview):  # TypeProto.tensor_type
                    elem, shape = _tensor_type(v2)
    return TensorInfo(name=name, elem_type=ELEM_TYPES.get(elem, f"onnx type {elem}"),
                      shape=shape)


def _tensor_type(buf: memoryview) -> tuple[int, tuple[int | None, ...] | None]:
    elem, shape = 0, None
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(wire, _VARINT, "elem_type")
            elem = value  # type: ignore[assignment]
        elif number == 2 and isinstance(value, memoryview):  # TensorShapeProto.dim=1
            dims: list[int | None] = []
            for n2, _w2, v2 in _fields(value):
                if n2 == 1 and isinstance(v2, memoryview):
                    dims.append(_dim(v2))
            shape = tuple(dims)
    return elem, shape


def _dim(buf: memoryview) -> int | None:
    """Dimension: dim_value=1 (int64), dim_param=2 (a symbolic name: dynamic)."""
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            return value if 0 < value < 2**62 else None  # type: ignore[return-value]
    return None
