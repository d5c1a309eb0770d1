"""Put chosen nodes of an int8 QDQ graph back in float, without data or a quantizer.

`edgecnn tune` searches the per-block placement on the device itself, where there are no
calibration images and possibly another ONNX Runtime version than the exporting machine's.
So it starts from the int8 file the export wrote (every block int8, calibrated and vetted by
the accuracy guard) and turns blocks back to float by rewriting that graph:

  weights   DequantizeLinear(w_int8, scale, zp) -> Conv   becomes   w_float -> Conv, where
            w_float = (w_int8 - zp) * scale: the very weights int8 computes with, in float;
  tensors   t -> QuantizeLinear -> DequantizeLinear -> readers   becomes   t -> Clip ->
            readers, when no int8 node writes t or reads it (the pair only rounds a float
            tensor). The Clip keeps the pair's range: the quantizer removed the ReLU before
            the Q (its range starts at 0), so the clamp is all that is left of it.
A pair stays where an int8 node writes the tensor (ONNX Runtime fuses Conv + Q into
QLinearConv) or reads it (DQ + Conv): Q/DQ pairs remain only where int8 meets float, as with
the quantizer's own `nodes_to_exclude` (export/mixed.py `pointless_pairs` checks both).

Importing this module needs `onnx` and numpy, not torch.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

QDQ = ("QuantizeLinear", "DequantizeLinear")


def compute_skeleton(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph's compute nodes only (no Q/DQ), for naming blocks (mixed.graph_blocks):
    the quantizer names its Q/DQ nodes after tensors, not modules."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    keep = [n for n in out.graph.node if n.op_type not in QDQ]
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


def with_float_nodes(proto: onnx.ModelProto, float_nodes: Iterable[str]) -> onnx.ModelProto:
    """A copy of the QDQ graph `proto` in which the nodes named in `float_nodes` compute in
    float (module doc). Names of Q/DQ nodes in `float_nodes` are ignored."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    floats = {n.name for n in g.node if n.name in set(float_nodes) and n.op_type not in QDQ}
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def const_dq(tensor: str) -> onnx.NodeProto | None:
        node = producer.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" \
            and node.input[0] in inits else None

    # 1. Float nodes read dequantized weights and biases as float initializers.
    made: dict[str, str] = {}
    for node in (n for n in g.node if n.name in floats):
        for i, tensor in enumerate(node.input):
            dq = const_dq(tensor)
            if dq is None:
                continue
            if tensor not in made:
                made[tensor] = f"{tensor}_float"
                g.initializer.append(numpy_helper.from_array(_dequantize(dq, inits),
                                                             made[tensor]))
            node.input[i] = made[tensor]
    # 2. Activation Q/DQ pairs around float nodes only: readers take the tensor itself.
    int8_nodes = {n.name for n in g.node if n.op_type not in QDQ and n.name not in floats}
    readers = _readers(g)
    outputs = {o.name for o in g.output}
    for q in [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]:
        src = producer.get(q.input[0])
        if src is not None and src.name in int8_nodes:
            continue  # an int8 node writes it: its output Q is part of its int8 kernel
        for dq in [r for r in readers.get(q.output[0], []) if r.op_type == "DequantizeLinear"]:
            users = readers.get(dq.output[0], [])
            if any(u.name in int8_nodes for u in users):
                continue
            # The quantizer dropped the ReLU (or Clip) before this Q: its range clamps
            # there. A Clip to that range keeps the clamp; fp32's kernels fuse it.
            lo, hi = _q_range(q, inits)
            names = (f"{dq.output[0]}_clip_min", f"{dq.output[0]}_clip_max")
            g.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n)
                                  for v, n in zip((lo, hi), names)])
            clip = onnx.helper.make_node("Clip", [q.input[0], *names], [dq.output[0]],
                                         name=f"{dq.name}_Clip")
            g.node.insert(list(g.node).index(dq), clip)
            g.node.remove(dq)
    drop_dead(g)
    return out


def _dequantize(dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> np.ndarray:
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float32)
    zp = (numpy_helper.to_array(inits[dq.input[2]]).astype(np.float32)
          if len(dq.input) > 2 and dq.input[2] else np.zeros_like(scale))
    if scale.ndim == 1 and scale.size > 1:  # per axis (weights: output channels)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


def _q_range(q: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> tuple[float, float]:
    """The float range a per-tensor QuantizeLinear maps onto its integer type."""
    scale = float(numpy_helper.to_array(inits[q.input[1]]))
    zp = numpy_helper.to_array(inits[q.input[2]])
    info = np.iinfo(zp.dtype)
    return (info.min - float(zp)) * scale, (info.max - float(zp)) * scale


def _readers(g: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            out.setdefault(t, []).append(n)
    return out


def drop_dead(g: onnx.GraphProto) -> None:
    """Nodes whose outputs nobody reads (the bypassed Q/DQ pairs, the weight DQs no node
    uses any more), then initializers nobody reads."""
    outputs = {o.name for o in g.output}
    while True:
        read = {t for n in g.node for t in n.input} | outputs
        dead = [n for n in g.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    read = {t for n in g.node for t in n.input}
    for t in [t for t in g.initializer if t.name not in read]:
        g.initializer.remove(t)
