"""Merge sibling int8 convolutions that feed one Concat into one convolution.

SqueezeNet's fire module reads the squeeze output with two convolutions, 1x1 and 3x3, and
joins their outputs with a Concat. In the int8 QDQ graph the export writes:

    x -> DQ -> Conv(1x1) -> Q -> DQ -+
         \\-> Conv(3x3) -> Q -> DQ -+-> Concat -> Q -> DQ -> ...

becomes

    x -> DQ -> Conv(3x3, the 1x1 kernels zero-padded to 3x3, centred) -> Q -> DQ -> ...

The integers are the same: a zero weight adds nothing to an int32 sum, each output channel
keeps its own weight scale and int32 bias, and the branches' output Q has the Concat's
scale and zero point (calibration gives a Concat's inputs its range, as NNCF's unified
scales do), so quantizing once after the Concat is what quantizing each branch did. A group
whose scales differ, or that any other node reads, is left as it is.

Whether it pays is the device's call, so `edgecnn tune` measures it per group
(`choose_merges`): it saves the Concat's copy and one kernel launch, and costs the padded
kernel's multiply-adds (9x for a 1x1 branch). OpenVINO on a 2-vCPU Xeon with AMX
(SqueezeNet 1.1 at 224, 1 thread) ran the two 55x55 fires merged about a third faster and
the later ones slower; ONNX Runtime there ran every group slower.

Importing this module needs `onnx` and numpy, not torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgecnn.export.mixed import block_of
from edgecnn.export.placement import drop_dead

# A group is merged when it profiles at least 3% faster merged, the placement search's
# margin (mixed.MixedConfig.margin): near-ties go either way between profiles, and each
# one merged adds the padded kernel's bytes to the file for nothing.
MARGIN = 0.97


@dataclass(frozen=True)
class Group:
    """One Concat whose inputs are int8 convolutions of the same tensor."""

    concat: str  # the Concat's node name
    convs: tuple[str, ...]  # its convolutions, in the Concat's input order

    @property
    def blocks(self) -> frozenset[str]:
        """The blocks (mixed.block_of) its nodes, and the merged one, are profiled under."""
        merged = _merged_name(self.concat)
        return frozenset(block_of(n) for n in (self.concat, *self.convs, merged))


def _merged_name(concat: str) -> str:
    return f"{concat}_conv"


def _new_names(concat: str) -> list[str]:
    """Every node, tensor and initializer name the rewrite of `concat`'s group adds."""
    conv = _merged_name(concat)
    tensors = [f"{conv}.{kind}" for kind in ("weight", "bias")]
    return [conv, *tensors, *(f"{t}_DequantizeLinear" for t in tensors),
            *(f"{t}_{part}" for t in tensors for part in ("quantized", "scale", "zero_point"))]


def sibling_groups(proto: onnx.ModelProto) -> list[Group]:
    """The Concats `merge` can replace, in graph order (module doc). None in a graph below
    opset 13 (no per-channel DequantizeLinear) or with subgraphs (If, Loop: their readers
    are not followed)."""
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13 or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                         for n in proto.graph.node for a in n.attribute):
        return []
    g = _Graph(proto)
    return [group for node in proto.graph.node if node.op_type == "Concat"
            for group in [g.group(node)] if group is not None]


def merge(proto: onnx.ModelProto, groups: Iterable[Group]) -> onnx.ModelProto:
    """A copy of `proto` with each of `groups` (from sibling_groups on it) merged."""
    valid = set(sibling_groups(proto))  # groups share no node: merging one leaves the rest
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for group in groups:
        if group not in valid:  # named after another graph's nodes
            raise ValueError(f"merge: {group.concat} is not a sibling group of this graph")
        _merge_one(out, group)
    drop_dead(out.graph)  # the branches, their Q/DQ and weights
    return out


def choose_merges(groups: list[Group], unmerged: dict[str, float], merged: dict[str, float],
                  margin: float = MARGIN) -> list[Group]:
    """The groups to merge: those whose blocks' kernel time (ms, a profile per block of each
    graph, profiled side by side, every group merged in `merged`) is lower merged than
    `margin` times unmerged. Groups that share a block (mixed.block_of) are judged on its
    total, so together."""
    return [g for g in groups if group_ms(merged, g) < margin * group_ms(unmerged, g)]


def group_ms(profile: dict[str, float], group: Group) -> float:
    """Kernel ms of the blocks a group is profiled under."""
    return sum(profile.get(b, 0.0) for b in group.blocks)


# --- matching -------------------------------------------------------------------------------

class _Graph:
    def __init__(self, proto: onnx.ModelProto) -> None:
        g = proto.graph
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for t in n.input:
                self.readers.setdefault(t, []).append(n)
        self.outputs = {o.name for o in g.output}
        self.node_names = Counter(n.name for n in g.node)
        self.names = set(self.node_names) | set(self.inits) | set(self.readers) \
            | set(self.producer) | {i.name for i in g.input}

    def only_reader(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        readers = self.readers.get(tensor, [])
        if tensor in self.outputs or len(readers) != 1 or readers[0].op_type != op_type:
            return None
        return readers[0]

    def made_by(self, tensor: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def const(self, tensor: str) -> np.ndarray | None:
        t = self.inits.get(tensor)
        if t is None or t.data_location == onnx.TensorProto.EXTERNAL:
            return None
        return numpy_helper.to_array(t)

    def const_dq(self, tensor: str) -> tuple[np.ndarray, ...] | None:
        """(values, scale, zero point) of a DequantizeLinear of initializers, per output
        channel (axis 0); None for anything else."""
        dq = self.made_by(tensor, "DequantizeLinear")
        if dq is None or len(dq.input) < 3:
            return None
        arrays = [self.const(t) for t in dq.input[:3]]
        if any(a is None for a in arrays):
            return None
        q, scale, zp = arrays
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.size > 1 and axis != 0:
            return None
        n = q.shape[0]
        return q, np.broadcast_to(scale, (n,)).copy(), np.broadcast_to(zp, (n,)).copy()

    def q_params(self, node: onnx.NodeProto) -> tuple[float, int, str] | None:
        """(scale, zero point, its type) of a per-tensor Q or DQ: the type is the clamp (u8
        from 0 stands for the ReLU the quantizer removed)."""
        arrays = [self.const(t) for t in node.input[1:3]] if len(node.input) >= 3 else [None]
        if any(a is None or a.size != 1 for a in arrays):
            return None
        scale, zp = arrays
        return float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]), str(zp.dtype)

    def group(self, concat: onnx.NodeProto) -> Group | None:
        axis = next((a.i for a in concat.attribute if a.name == "axis"), None)
        after = self.only_reader(concat.output[0], "QuantizeLinear")
        if axis != 1 or len(concat.input) < 2 or after is None:
            return None
        convs = []
        for tensor in concat.input:
            dq = self.made_by(tensor, "DequantizeLinear")
            q = None if dq is None else self.made_by(dq.input[0], "QuantizeLinear")
            conv = None if q is None else self.made_by(q.input[0], "Conv")
            if (conv is None or self.only_reader(tensor, "Concat") is None
                    or self.only_reader(q.output[0], "DequantizeLinear") is None
                    or self.only_reader(conv.output[0], "QuantizeLinear") is None
                    or self.q_params(q) is None
                    or not self.q_params(q) == self.q_params(dq) == self.q_params(after)):
                return None
            convs.append(conv)
        # the rewrite finds nodes by name and adds names of its own: both must be unambiguous
        named = all(n and self.node_names[n] == 1 for n in (concat.name, *(c.name for c in convs)))
        if (len({c.input[0] for c in convs}) != 1  # one tensor, int8 (ORT's QDQ Conv)
                or self.made_by(convs[0].input[0], "DequantizeLinear") is None
                or not named or self.names & set(_new_names(concat.name))
                or not self._compatible(convs)):
            return None
        return Group(concat.name, tuple(c.name for c in convs))

    def _compatible(self, convs: list[onnx.NodeProto]) -> bool:
        """Same input and stride, group 1, no dilation, int8 weights and int32 biases per
        output channel, odd kernels whose centres line up (module doc)."""
        shapes = []
        for conv in convs:
            attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
            w = self.const_dq(conv.input[1])
            b = self.const_dq(conv.input[2]) if len(conv.input) > 2 else None
            # zero points 0: a padded tap (integer 0) must dequantize to 0
            if (w is None or b is None or w[0].dtype != np.int8 or b[0].dtype != np.int32
                    or np.any(w[2] != 0) or w[0].ndim != 4 or attrs.get("group", 1) != 1
                    or any(d != 1 for d in attrs.get("dilations", [1, 1]))
                    or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
                return False
            k = w[0].shape[2:]
            pads = attrs.get("pads", [0, 0, 0, 0])
            if any(s % 2 == 0 for s in k):
                return False
            # the input rows an output reads, relative to its centre: equal in every branch
            shapes.append((tuple(attrs.get("strides", [1, 1])),
                           tuple(p - (s - 1) // 2 for p, s in zip(pads, [*k, *k]))))
        return len(set(shapes)) == 1


# --- rewriting ------------------------------------------------------------------------------

def _merge_one(proto: onnx.ModelProto, group: Group) -> None:
    g = proto.graph
    graph = _Graph(proto)
    nodes = {n.name: n for n in g.node}
    convs = [nodes[name] for name in group.convs]
    concat = nodes[group.concat]
    weights = [graph.const_dq(c.input[1]) for c in convs]
    biases = [graph.const_dq(c.input[2]) for c in convs]
    big = np.array([max(w[0].shape[d] for w in weights) for d in (2, 3)])
    padded = []
    for q, _, _ in weights:
        ph, pw = (big - np.array(q.shape[2:])) // 2
        padded.append(np.pad(q, ((0, 0), (0, 0), (ph, ph), (pw, pw))))
    name = _merged_name(group.concat)
    tensors, made = {}, []
    for kind, parts in (("weight", [(p, w[1], w[2]) for p, w in zip(padded, weights)]),
                        ("bias", biases)):
        names = [f"{name}.{kind}_{part}" for part in ("quantized", "scale", "zero_point")]
        for i, tensor in enumerate(names):
            g.initializer.append(numpy_helper.from_array(
                np.concatenate([p[i] for p in parts]), tensor))
        tensors[kind] = f"{name}.{kind}"
        made.append(helper.make_node("DequantizeLinear", names, [tensors[kind]], axis=0,
                                     name=f"{tensors[kind]}_DequantizeLinear"))
    attrs = {a.name: helper.get_attribute_value(a) for a in convs[0].attribute
             if a.name not in ("kernel_shape", "pads")}
    k = weights[0][0].shape[2:]
    pads0 = next((helper.get_attribute_value(a) for a in convs[0].attribute if a.name == "pads"),
                 [0, 0, 0, 0])
    grow = [(b - s) // 2 for b, s in zip(big, k)]
    pads = [p + d for p, d in zip(pads0, [*grow, *grow])]
    merged = helper.make_node("Conv", [convs[0].input[0], tensors["weight"], tensors["bias"]],
                              [concat.output[0]], name=name, kernel_shape=[int(v) for v in big],
                              pads=[int(p) for p in pads], **attrs)
    # where the Concat was: everything the merged conv reads is made before it (its input
    # before the branches; its weights are initializers), and its readers come after
    at = list(g.node).index(concat)
    g.node.remove(concat)
    for node in reversed([*made, merged]):
        g.node.insert(at, node)
