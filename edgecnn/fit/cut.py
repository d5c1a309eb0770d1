"""Cut-outs of a graph for the latency table (latency.py): each layer alone, and each
layer with the one it feeds.

A layer is a compute node with the activation fused into it (ONNX Runtime runs Conv+Relu
as one kernel) and the Constant nodes they read. Its cut-out takes the layer's first
activation input as the graph's one input (the runners feed images); weights are its own;
other activations it reads (a residual Add's other operand) are random constants.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

FUSED_ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu")


@dataclass(frozen=True)
class Layer:
    key: str  # hash of the configuration
    describe: str  # "Conv 32x16x16 w(64, 32, 1, 1) group=1 stride=1,1 ..."


@dataclass(frozen=True)
class Edge:
    """A layer feeding the next: what the whole model saves there is timed, see
    `_edges`."""

    key: str  # hash of `describe`
    describe: str  # "Conv <producer key> -> Conv <consumer key> (activation input 0)"
    producer: str  # layer keys
    consumer: str


@dataclass(frozen=True)
class _Unit:
    """One layer of a graph: its compute node, the activation fused into it, the Constant
    nodes they read."""

    layer: Layer
    nodes: tuple[Any, ...]
    acts: tuple[str, ...]  # activation inputs; the first is the cut-out's graph input
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class _Parsed:
    units: list[_Unit]
    shapes: dict[str, tuple[int, ...]]
    inits: dict[str, Any]
    proto: Any


def _parse(proto: Any) -> _Parsed:
    """`proto`'s compute nodes as layers, in graph order."""
    from onnx import helper, shape_inference

    g = shape_inference.infer_shapes(proto).graph
    shapes = {v.name: tuple(int(d.dim_value) for d in v.type.tensor_type.shape.dim)
              for v in [*g.input, *g.value_info, *g.output]}
    inits = {t.name: t for t in g.initializer}
    constants = {o: n for n in g.node if n.op_type == "Constant" for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    fused: set[int] = set()
    units = []
    for node in g.node:
        acts = [i for i in node.input if i and i not in inits and i not in constants]
        if node.op_type == "Constant" or not acts or acts[0] not in shapes or id(node) in fused:
            continue
        # An activation right after a conv is one kernel in the runtimes (ORT's FusedConv):
        # timed apart, it would pay a call of its own that the whole model never pays.
        follow = consumers.get(node.output[0], []) if len(node.output) == 1 else []
        act = follow[0] if (len(follow) == 1 and follow[0].op_type in FUSED_ACTIVATIONS
                            and node.op_type in ("Conv", "Gemm", "MatMul")) else None
        if act is not None:
            fused.add(id(act))
        first = shapes[acts[0]]
        attrs = sorted((a.name, str(helper.get_attribute_value(a))) for a in node.attribute)
        weights = [(i, tuple(inits[i].dims)) for i in node.input if i in inits]
        text = (f"{node.op_type} in{list(first)} "
                + " ".join(f"{k}={v}" for k, v in attrs)
                + "".join(f" w{list(s)}" for _, s in weights)
                + "".join(f" x{list(shapes.get(i, ()))}" for i in acts[1:])
                + (f" +{act.op_type}" + "".join(
                    f" {a.name}={helper.get_attribute_value(a)}" for a in act.attribute)
                   if act is not None else ""))
        layer = Layer(hashlib.sha256(text.encode()).hexdigest()[:16], text)
        own = [node, *([act] if act is not None else [])]
        read = dict.fromkeys(i for n in own for i in n.input if i in constants)
        nodes = (*(constants[i] for i in read), *own)  # Reshape's shape, Clip's bounds
        last = act if act is not None else node
        units.append(_Unit(layer, nodes, tuple(acts), tuple(o for o in last.output if o)))
    return _Parsed(units, shapes, inits, proto)


def _subgraph(parsed: _Parsed, units: list[_Unit], name: str) -> Any:
    """`units` (one, or a producer and its consumer) as a graph of their own. The first
    unit's first activation input is the graph's input (reshaped from (1, n, 1, 1) where it
    is not 4-D: the runners take images); weights are the nodes' own; activations from
    outside the graph (a residual Add's other operand) are random constants of their shape;
    the last unit's outputs are the graph's."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    x = units[0].acts[0]
    first = parsed.shapes[x]
    nodes: list[Any] = []
    tensors: list[Any] = []
    if len(first) == 4:
        inputs = [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, first)]
    else:  # (1, n, 1, 1) -> the node's shape
        flat, shape_name = f"{x}__flat", f"{x}__shape"
        inputs = [helper.make_tensor_value_info(
            flat, onnx.TensorProto.FLOAT, (1, int(np.prod(first)), 1, 1))]
        nodes.append(helper.make_node("Reshape", [flat, shape_name], [x]))
        tensors.append(numpy_helper.from_array(np.array(first, np.int64), shape_name))
    made = {x}
    added: set[int] = set()  # a Constant node both units read goes in once
    for unit in units:
        for node in unit.nodes:
            if id(node) in added:
                continue
            added.add(id(node))
            nodes.append(node)
            for i in node.input:
                if i in parsed.inits and i not in made:
                    tensors.append(parsed.inits[i])
                    made.add(i)
            made.update(node.output)
        for a in unit.acts:
            if a not in made:
                tensors.append(numpy_helper.from_array(
                    rng.standard_normal(parsed.shapes.get(a, first)).astype(np.float32), a))
                made.add(a)
    outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
               for o in units[-1].outputs]
    graph = helper.make_graph(nodes, name, inputs, outputs, tensors)
    model = helper.make_model(graph, opset_imports=list(parsed.proto.opset_import))
    model.ir_version = parsed.proto.ir_version
    return model


def split(proto: Any) -> tuple[list[tuple[Layer, Any]], list[tuple[Edge, Any]]]:
    """`proto` parsed once, cut two ways: each compute node (with the activation fused into
    it) as (layer, its own graph), and each layer feeding another as (edge, the pair's
    graph; see `_edges`)."""
    parsed = _parse(proto)
    layers = [(u.layer, _subgraph(parsed, [u], f"layer_{u.layer.key}")) for u in parsed.units]
    return layers, _edges(parsed)


def _edges(parsed: _Parsed) -> list[tuple[Edge, Any]]:
    """Each layer feeding another as (edge, the pair's graph). Timed alone, each layer pays
    what the whole model pays once or not at all: a call into the runtime, and the
    conversion of its input and output between the graph's layout and the runtime's own
    (ONNX Runtime's NCHWc blocks on x86; OpenVINO's blocked formats), which grows with the
    tensor. Timed as a pair, the tensor between them is converted neither way, so producer
    + consumer - pair is what the model saves at that edge (the call is already off each
    layer's time, see LatencyTable). MobileNet v1's 12-point grid on the 2-core EPYC, 1
    thread, four tables (100 calls a file): the layers' sums were 1.15-1.93x the whole
    models, and the line fitted through three points missed the other nine by up to
    6.6-10.0%; from the same timings, less each edge's saving, the sums were 0.95-1.06x and
    the line within 2.9-5.6%.

    Exact on a chain (MobileNet v1), approximate where a graph branches: a tensor read by
    several layers has its producer's conversion taken off at each reader's pair, and a
    pair into a later operand (a residual Add's, a Concat's) also has the consumer's first
    operand as a constant. Those over-credits are not what dominates on ONNX Runtime: on
    branching families the table's sums still ran over the whole models. Grids of 3 alphas
    (4 for v2) x 32/48/64 px, 1 thread, 40 calls a file, two tables each, the line's worst
    error over the points not fitted, with the edges / the layers alone: MobileNet v2
    5.6-11.0% / 15.1-16.9%, ShuffleNet v2 6.3-8.1% / 15.8-17.4%, SqueezeNet 1.1 12.9-13.4%
    (7.9-12.5% in three more tables, 28% in a fourth) / 9.5-11.9%, MobileNet v3 small
    8.5-10.6% / 6.4-11.8%."""
    made_by = {o: u for u in parsed.units for o in u.outputs}
    out = []
    for consumer in parsed.units:
        producers: set[int] = set()
        for index, a in enumerate(consumer.acts):
            producer = made_by.get(a)
            if producer is None or id(producer) in producers:
                continue  # the graph input, or a second operand from the same layer
            producers.add(id(producer))
            text = (f"{producer.layer.describe.split()[0]} {producer.layer.key} -> "
                    f"{consumer.layer.describe.split()[0]} {consumer.layer.key} (activation "
                    f"input {index})")
            edge = Edge(hashlib.sha256(text.encode()).hexdigest()[:16], text,
                        producer.layer.key, consumer.layer.key)
            out.append((edge, _subgraph(parsed, [producer, consumer], f"edge_{edge.key}")))
    return out


def empty_graph(ir_version: int, opset_imports: Any) -> Any:
    """An Identity on a small image: the runtime's cost of one call that computes nothing."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (1, 1, 8, 8))
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, (1, 1, 8, 8))
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])],
                                                "empty", [x], [y]),
                              opset_imports=list(opset_imports))
    model.ir_version = ir_version
    return model
