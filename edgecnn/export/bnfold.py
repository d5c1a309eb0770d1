"""BatchNormalization nodes that no convolution precedes, on the exported ONNX graph.

The exporters (and onnxslim) fold a BN into the convolution *before* it. Pre-activation
networks put BN first: DenseNet-BC (BN-ReLU-conv after every concatenation) and the
pre-activation ResNets (BN-ReLU after every residual sum) leave 8 (pre-activation ResNet-18)
to 134 (DenseNet-264) BNs whose input is an Add, a Concat or a pool. `fold_batchnorms`
handles each one:

1. Folded into the convolutions *after* it when that is exact: every reader of the BN's
   output is a Conv with a constant weight and either no padding or a zero shift. BN is
   y = s * x + t per channel; conv(y) = conv'(x) with W'[o, i] = W[o, i] * s[i] and
   b'[o] = b[o] + sum_i,k W[o, i, k] * t[i]. A nonlinearity in between (BN-ReLU-conv, the
   case of every BN the zoo leaves) breaks this, and so does zero padding: the conv pads y
   with zeros where the folded conv pads x, i.e. y with t, so borders differ unless t = 0.
2. Otherwise rewritten as y = Mul(x, s) + t with (C, 1, 1) constants, not kept as
   BatchNormalization. Measured (benchmarks/zoo/bn_forms.py, bn_forms.md: fp32, batch 1, one
   thread, 224 px, the 2-core AMD EPYC shared with other jobs), BN is the faster fp32 form
   in ONNX Runtime 1.31: Mul + Add took 1.060x (pre-activation ResNet-50, 16 BNs) and 1.069x
   (DenseNet-121, 62 BNs) BN's time (two passes over the tensor instead of one; ORT fuses
   neither into the ReLU); in OpenVINO 2026.4 0.993x / 1.042x (it lowers BN to its own
   multiply-add either way). But the int8 file is made from this graph, and with BN kept
   OpenVINO 2026.4's low-precision transformations (MoveFakeQuantize ->
   moveDequantizationBefore) segfault compiling DenseNet-121's QDQ graph, taking the
   exporting process down, whether the BNs are quantized or left float; with Mul + Add it
   compiles (densenet121 at 61 px, cpu-arm int8 scheme). A 6-7% fp32 cost in one runtime
   buys an export that cannot crash. A BN whose input rank is unknown stays as it is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass
class BNReport:
    folded: int = 0  # BNs folded into the convolutions after them
    mul_add: int = 0  # BNs rewritten as Mul + Add (a nonlinearity or padding in between)
    kept: int = 0  # BNs left as they are (non-constant statistics, unknown input rank)


def fold_batchnorms(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, BNReport]:
    """Fold every BN into the convolutions it feeds where exact (see the module doc)."""
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for t in n.input:
            readers[t].append(n)
    outputs = {o.name for o in g.output}
    report = BNReport()
    dropped: set[int] = set()
    replaced: dict[int, list[onnx.NodeProto]] = {}
    ranks: dict[str, int] | None = None
    for bn in g.node:
        if bn.op_type != "BatchNormalization":
            continue
        affine = _affine(bn, inits)
        convs = readers[bn.output[0]]
        if affine is None:
            report.kept += 1
        elif bn.output[0] not in outputs and convs and \
                all(_foldable(c, inits, affine[1]) for c in convs):
            for conv in convs:
                _fold_into(conv, bn.input[0], *affine, g, inits, readers)
            dropped.add(id(bn))
            report.folded += 1
        else:
            ranks = _ranks(proto) if ranks is None else ranks
            rank = ranks.get(bn.input[0], 0)
            if rank < 2:
                report.kept += 1
                continue
            replaced[id(bn)] = _mul_add(bn, *affine, rank, g)
            report.mul_add += 1
    if dropped or replaced:
        nodes = [m for n in g.node if id(n) not in dropped for m in replaced.get(id(n), [n])]
        del g.node[:]
        g.node.extend(nodes)
        used = {t for n in g.node for t in n.input}
        keep = [t for t in g.initializer if t.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    return proto, report


def _ranks(proto: onnx.ModelProto) -> dict[str, int]:
    """Rank of every tensor shape inference knows (0 when it does not)."""
    graph = onnx.shape_inference.infer_shapes(proto).graph
    return {v.name: len(v.type.tensor_type.shape.dim)
            for v in (*graph.value_info, *graph.input, *graph.output)
            if v.type.tensor_type.HasField("shape")}


def _mul_add(bn: onnx.NodeProto, s: np.ndarray, t: np.ndarray, rank: int,
             g: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Mul(x, s) then Add(., t), the constants shaped (C, 1, ...) to broadcast over NCHW."""
    base = bn.name or bn.output[0]
    shape = (-1,) + (1,) * (rank - 2)
    names = (f"{base}_scale", f"{base}_shift")
    for name, value in zip(names, (s, t)):
        g.initializer.append(numpy_helper.from_array(value.astype(np.float32).reshape(shape),
                                                     name))
    scaled = f"{base}_scaled"
    return [onnx.helper.make_node("Mul", [bn.input[0], names[0]], [scaled], name=f"{base}/Mul"),
            onnx.helper.make_node("Add", [scaled, names[1]], list(bn.output),
                                  name=f"{base}/Add")]


def _affine(bn: onnx.NodeProto, inits: dict[str, onnx.TensorProto]
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, t) of the inference-mode BN y = s * x + t, in float64; None if not constant."""
    if len(bn.output) != 1 or not all(t in inits for t in bn.input[1:5]):
        return None
    scale, bias, mean, var = (numpy_helper.to_array(inits[t]).astype(np.float64)
                              for t in bn.input[1:5])
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    s = scale / np.sqrt(var + eps)
    return s, bias - mean * s


def _foldable(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto], shift: np.ndarray
              ) -> bool:
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return False
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    auto = attrs.get("auto_pad", b"NOTSET")
    padded = any(attrs.get("pads", ())) or auto not in (b"NOTSET", b"VALID", "NOTSET", "VALID")
    return not padded or not np.any(shift)


def _fold_into(conv: onnx.NodeProto, source: str, s: np.ndarray, t: np.ndarray,
               g: onnx.GraphProto, inits: dict[str, onnx.TensorProto],
               readers: dict[str, list[onnx.NodeProto]]) -> None:
    """conv(s * x + t) as one conv of x: new weight and bias initializers (fresh names: the
    originals may be shared with other nodes)."""
    w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
    groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
    out_ch, in_per_group = w.shape[:2]
    # input channel seen by weight [o, j]: (o's group) * in_per_group + j
    index = (np.arange(out_ch) // (out_ch // groups))[:, None] * in_per_group + \
        np.arange(in_per_group)[None, :]
    spatial = (1,) * (w.ndim - 2)
    bias = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) \
        if len(conv.input) > 2 and conv.input[2] else np.zeros(out_ch)
    bias = bias + (w * t[index].reshape(*index.shape, *spatial)).reshape(out_ch, -1).sum(1)
    w = w * s[index].reshape(*index.shape, *spatial)
    dtype = numpy_helper.to_array(inits[conv.input[1]]).dtype
    names = []
    for suffix, value in (("weight", w), ("bias", bias)):
        name = f"{conv.name or conv.output[0]}_bnfold_{suffix}"
        tensor = numpy_helper.from_array(value.astype(dtype), name)
        g.initializer.append(tensor)
        inits[name] = tensor
        names.append(name)
    del conv.input[:]
    conv.input.extend([source, *names])
    readers[source].append(conv)
