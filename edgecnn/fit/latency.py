"""Latency on this machine: measured whole models, and a per-layer table that predicts the rest.

Once-for-All's idea (Cai et al. 2020), measured rather than estimated: every distinct layer
configuration of the grid's graphs (op, attributes, input and weight shapes: in/out channels,
kernel, stride, groups, spatial size) is cut out as a one-node ONNX graph and timed once,
through the one timing harness, at the deployment's threads and runtime. A candidate is
predicted as the sum of its layers plus a fixed per-inference overhead, fitted on a few fully
measured grid points; other measured grid points, held out of the fit, report the error.

Every layer's time is taken net of an empty graph's (an Identity): each one-node session pays
the runtime's per-call cost, which a whole model pays once, and the fitted overhead holds
that once.

Measurements go through `FitMeasure` (tests inject their own), so no decision depends on the
speed of the machine running the tests.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgecnn.errors import EdgeCNNError

EMPTY = "empty"  # the Identity graph's key in a table
FUSED_ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu")


class FitMeasure(Protocol):
    """What fit measures latency with: this machine (MeasuredHere) or a device
    (remote/measure.py RemoteMeasure). Beyond `time`, a measure may have `threads` (already
    checked against its device's cores), `identity()` (the device fit.json names; default:
    this machine) and `tune(artifact, log)` (an int8 candidate tuned where it is measured;
    default: `edgecnn tune` here)."""

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        """p50 ms at batch 1 of each ONNX file (one 4-D input each), timed side by side."""


@dataclass(frozen=True)
class MeasuredHere:
    """This machine, through the timing harness (interleaved, rotated rounds), in ONNX
    Runtime at the deployment's thread count: how tune times whole files."""

    threads: int
    runtime: str = "onnxruntime"
    iters: int = 40
    rounds: int = 4

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        from edgecnn.timing.files import time_files

        return time_files(files, self.runtime, self.threads, iters=self.iters,
                          rounds=self.rounds)

    def tune(self, artifact: Path, log: Callable[[str], None]) -> None:
        """`edgecnn tune` on this machine, at these threads."""
        from edgecnn.tune.run import TuneSpec, tune

        tune(TuneSpec(str(artifact), threads=self.threads), log=log)


def best_of(measure: FitMeasure, files: dict[str, Path], passes: int = 2) -> dict[str, float]:
    """Each file's fastest p50 over `passes` groups. What else runs on a machine only adds
    time, and a burst of it can cover a stretch of one group: on the 2-core development EPYC,
    one fit's per-layer sums came out 1.3-2x its other fits' for the same graphs, and the
    table's held-out error 84% (benchmarks/fit/results-small.md). The fastest of two groups
    is the usual guard (Python's timeit keeps the minimum for the same reason)."""
    return fastest([measure.time(files) for _ in range(passes)])


def fastest(groups: list[dict[str, float]]) -> dict[str, float]:
    """Each key's smallest time over several groups' results."""
    return {k: min(g[k] for g in groups) for k in groups[0]}


# --- graphs ----------------------------------------------------------------------------------

def model_graph(model: Any, resolution: int, in_chans: int) -> Any:
    """The fp32 graph the export writes for `model` (the same steps: ONNX export, onnxslim,
    BatchNorm folding), at batch 1: what is timed is what ships."""
    import torch

    from edgecnn.export.bnfold import fold_batchnorms
    from edgecnn.export.onnx_io import simplify, to_onnx_proto

    sample = torch.zeros(1, in_chans, resolution, resolution)
    proto, _ = fold_batchnorms(simplify(to_onnx_proto(model, sample, opset=17)))
    return proto


def untrained_graph(family: str, alpha: float, resolution: int, num_classes: int,
                    in_chans: int) -> Any:
    """A grid point's graph with initialized weights: its latency is its trained one's."""
    import torch

    from edgecnn.registry import create_model

    torch.manual_seed(0)
    model = create_model(family, alpha=alpha, num_classes=num_classes, in_chans=in_chans)
    return model_graph(model.eval(), resolution, in_chans)


@dataclass(frozen=True)
class Layer:
    key: str  # hash of the configuration
    describe: str  # "Conv 32x16x16 w(64, 32, 1, 1) group=1 stride=1,1 ..."


def split_layers(proto: Any) -> list[tuple[Layer, Any]]:
    """Each compute node of `proto` as (layer, one-node graph). The node's first activation
    input is the graph's input (reshaped from (1, n, 1, 1) where it is not 4-D: the runners
    take images); weights are the node's own, other activation inputs (a residual Add's
    second operand) random constants of their shape."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(proto)
    g = inferred.graph
    shapes = {v.name: tuple(int(d.dim_value) for d in v.type.tensor_type.shape.dim)
              for v in [*g.input, *g.value_info, *g.output]}
    inits = {t.name: t for t in g.initializer}
    constants = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    rng = np.random.default_rng(0)
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    fused: set[int] = set()
    out = []
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
        nodes, inputs = [], []
        if len(first) == 4:
            inputs.append(helper.make_tensor_value_info(acts[0], onnx.TensorProto.FLOAT, first))
        else:  # (1, n, 1, 1) -> the node's shape
            flat = f"{acts[0]}__flat"
            inputs.append(helper.make_tensor_value_info(
                flat, onnx.TensorProto.FLOAT, (1, int(np.prod(first)), 1, 1)))
            shape_name = f"{acts[0]}__shape"
            nodes.append(helper.make_node("Reshape", [flat, shape_name], [acts[0]]))
            extra = [numpy_helper.from_array(np.array(first, np.int64), shape_name)]
        tensors = [inits[i] for i in node.input if i in inits] + (
            extra if len(first) != 4 else [])
        for name in acts[1:]:
            if name == acts[0]:
                continue
            tensors.append(numpy_helper.from_array(
                rng.standard_normal(shapes.get(name, first)).astype(np.float32), name))
        for n in g.node:  # constants the node reads (Reshape's shape, Pad's pads)
            if n.op_type == "Constant" and set(n.output) & set(node.input):
                nodes.append(n)
        nodes.append(node)
        last = node
        if act is not None:
            tensors += [inits[i] for i in act.input if i in inits]  # Clip's min and max
            nodes.append(act)
            last = act
        outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                   for o in last.output if o]
        graph = helper.make_graph(nodes, f"layer_{layer.key}", inputs, outputs, tensors)
        one = helper.make_model(graph, opset_imports=list(proto.opset_import))
        one.ir_version = proto.ir_version
        out.append((layer, one))
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


# --- the table and the predictor --------------------------------------------------------------

@dataclass
class LatencyTable:
    """Net ms per distinct layer, and which layers each graph is made of."""

    layers_ms: dict[str, float]  # layer key -> ms net of the empty call
    describe: dict[str, str]
    graphs: dict[str, list[str]]  # graph name -> its layer keys, in order
    empty_ms: float
    overhead_ms: float = 0.0  # fitted: predict = scale x sum of layers + overhead
    scale: float = 1.0
    check: dict[str, Any] = field(default_factory=dict)  # the held-out error, reported
    params: dict[str, int] = field(default_factory=dict)  # graph name -> weight elements
    # int8: (weight elements, int8 ms / fp32 ms) of the fit points timed whole in both
    int8_ratios: list[tuple[float, float]] = field(default_factory=list)

    def layer_sum(self, graph: str) -> float:
        return sum(self.layers_ms[k] for k in self.graphs[graph])

    def predict(self, graph: str) -> float:
        return self.scale * self.layer_sum(graph) + self.overhead_ms

    def predict_int8(self, graph: str) -> float:
        """The fp32 prediction times int8's speed ratio, measured on the fit points and
        interpolated between them on the weight count (log scale; the end points' beyond).
        On a CPU int8 gains with the channel count, which the weights follow and the
        resolution does not: MobileNet's 12-point grid on the 2-core EPYC (AVX2, 1 thread)
        ran int8 at 1.31-1.37x fp32's time at alpha 0.25, 0.83-0.90x at 0.5, 0.70-0.72x at
        0.75 and 0.61-0.64x at 1.0, at every resolution; interpolated on the layer sum,
        which mixes the two, the held-out error was 29-33%."""
        pts = self.int8_ratios
        if not pts:
            raise EdgeCNNError("no int8 latency was measured for this table")
        x = math.log(max(self.params[graph], 1))
        logs = [(math.log(max(n, 1)), r) for n, r in pts]
        if x <= logs[0][0]:
            ratio = logs[0][1]
        elif x >= logs[-1][0]:
            ratio = logs[-1][1]
        else:
            (x0, r0), (x1, r1) = next((a, b) for a, b in zip(logs, logs[1:]) if x <= b[0])
            ratio = r0 + (r1 - r0) * (x - x0) / (x1 - x0) if x1 > x0 else r1
        return self.predict(graph) * ratio

    def to_dict(self) -> dict[str, Any]:
        return {"empty_ms": self.empty_ms, "overhead_ms": self.overhead_ms, "scale": self.scale,
                "check": self.check, "params": self.params, "int8_ratios": self.int8_ratios,
                "layers": {k: {"ms": v, "layer": self.describe[k]}
                           for k, v in self.layers_ms.items()},
                "graphs": self.graphs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        return cls({k: v["ms"] for k, v in data["layers"].items()},
                   {k: v["layer"] for k, v in data["layers"].items()}, data["graphs"],
                   data["empty_ms"], data["overhead_ms"], data["scale"], data["check"],
                   data.get("params", {}), [tuple(p) for p in data.get("int8_ratios", [])])


def build_table(graphs: dict[str, Any], measure: FitMeasure, scratch: Path,
                log: Callable[[str], None] = lambda line: None) -> LatencyTable:
    """Time every distinct layer of `graphs` (name -> ONNX proto) once, side by side."""
    import onnx

    layers: dict[str, Any] = {}
    describe: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name, proto in graphs.items():
        parts = split_layers(proto)
        members[name] = [layer.key for layer, _ in parts]
        for layer, one in parts:
            layers.setdefault(layer.key, one)
            describe[layer.key] = layer.describe
    some = next(iter(graphs.values()))
    files = {EMPTY: scratch / "empty.onnx"}
    scratch.mkdir(parents=True, exist_ok=True)
    onnx.save_model(empty_graph(some.ir_version, some.opset_import), str(files[EMPTY]))
    for key, one in layers.items():
        files[key] = scratch / f"{key}.onnx"
        onnx.save_model(one, str(files[key]))
    total = sum(len(v) for v in members.values())
    log(f"timing {len(layers)} distinct layers ({total} in {len(graphs)} graphs) and an empty "
        "graph, one node each, in two groups (each layer's faster time)")
    ms = best_of(measure, files)
    empty = ms.pop(EMPTY)
    params = {name: sum(math.prod(t.dims) for t in proto.graph.initializer)
              for name, proto in graphs.items()}
    # A layer faster than the empty call is noise around zero, not negative time.
    return LatencyTable({k: max(0.0, v - empty) for k, v in ms.items()}, describe, members,
                        empty, params=params)


def calibrate(table: LatencyTable, measured: dict[str, float], fit: list[str],
              held_out: list[str]) -> None:
    """Scale and overhead from the fit points, the error on the held-out ones (the issue's
    goal: within 10%). With three or more fit points, a least-squares line: layers timed
    alone run with their weights hot in cache and pay a dispatch a fused model shares, which
    scale with the model rather than stay fixed (MobileNet v1 on an EPYC, 1 thread: the
    layer sums overshot 0.25x/32 by 75% and undershot 1.0x/64 by 18%). With fewer, the
    overhead alone (median of measured minus layer sum)."""
    if not fit:
        raise EdgeCNNError("the latency table needs at least one measured grid point")
    xs = [table.layer_sum(g) for g in fit]
    ys = [measured[g] for g in fit]
    if len(fit) >= 3 and max(xs) > min(xs):
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2
                                                                       for x in xs)
        if slope > 0:  # a busy machine's inverted points: fall back to the overhead alone
            table.scale, table.overhead_ms = slope, my - slope * mx
        else:
            table.scale, table.overhead_ms = 1.0, statistics.median(y - x for x, y in
                                                                    zip(xs, ys))
    else:
        table.scale, table.overhead_ms = 1.0, statistics.median(y - x for x, y in
                                                                zip(xs, ys))
    errors = {g: (table.predict(g) - measured[g]) / measured[g] for g in held_out}
    table.check = {
        "fit_points": {g: round(measured[g], 4) for g in fit},
        "held_out": {g: {"measured_ms": round(measured[g], 4),
                         "predicted_ms": round(table.predict(g), 4),
                         "error_pct": round(100 * e, 2)} for g, e in errors.items()},
        "max_abs_error_pct": round(100 * max((abs(e) for e in errors.values()), default=0.0),
                                   2) if errors else None,
    }


def calibrate_int8(table: LatencyTable, fp32: dict[str, float], int8: dict[str, float],
                   fit: list[str], held_out: list[str]) -> None:
    """int8's speed ratio from the fit points (each timed whole in fp32 and in int8), and
    the int8 prediction's error on the held-out ones, beside fp32's in `table.check`."""
    table.int8_ratios = sorted((table.params[g], int8[g] / fp32[g]) for g in fit)
    errors = {g: (table.predict_int8(g) - int8[g]) / int8[g] for g in held_out}
    table.check["int8"] = {
        "fit_points": {g: round(int8[g], 4) for g in fit},
        "held_out": {g: {"measured_ms": round(int8[g], 4),
                         "predicted_ms": round(table.predict_int8(g), 4),
                         "error_pct": round(100 * e, 2)} for g, e in errors.items()},
        "max_abs_error_pct": round(100 * max(abs(e) for e in errors.values()), 2)
        if errors else None,
    }


def int8_graph(proto: Any, target: str) -> Any:
    """A grid point's graph with every block in int8, in `target`'s scheme, calibrated on
    random images: what is timed is which kernels run, which the ranges' values do not
    change (the trained finalists are exported with real calibration and tuned)."""
    import numpy as np

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.quantize import preprocess, quantize
    from edgecnn.export.targets import load_target

    dims = [int(d.dim_value) for d in proto.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal((8, *dims[1:])).astype(np.float32)
    return quantize(preprocess(proto), CalibrationReader(x), load_target(target).int8)


def int8_target(identity: dict[str, Any]) -> str:
    """The CPU recipe for the device that measures (edgecnn.host.device() there): 64-bit
    Arm is cpu-arm; x86 with VNNI cpu-x86-vnni (8-bit weights); other x86 cpu-x86."""
    from edgecnn.host import int8_saturates

    arch = str(identity.get("arch") or "").lower()
    if arch in ("aarch64", "arm64"):
        return "cpu-arm"
    if arch in ("x86_64", "amd64") and not int8_saturates(arch, set(identity.get("isa") or ())):
        return "cpu-x86-vnni"
    return "cpu-x86"  # x86 without VNNI, or a machine not known: 7-bit weights run anywhere


def measured_points(names_by_size: list[str]) -> tuple[list[str], list[str]]:
    """Which grid points are timed whole: the smallest and the largest (and the middle one,
    from five points) fit the table; up to three spread between them are held out to check
    the prediction."""
    n = len(names_by_size)
    if n <= 2:
        return names_by_size[:1], names_by_size[1:]
    fit_idx = sorted({0, n - 1} | ({n // 2} if n >= 5 else set()))
    rest = [i for i in range(n) if i not in fit_idx]
    step = max(1, len(rest) // 3)
    held = rest[step // 2::step][:3]
    return [names_by_size[i] for i in fit_idx], [names_by_size[i] for i in held]
