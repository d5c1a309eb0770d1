"""Latency on this machine: measured whole models, and a per-layer table that predicts the rest.

Once-for-All's idea (Cai et al. 2020), measured rather than estimated: every distinct layer
configuration of the grid's graphs (op, attributes, input and weight shapes: in/out channels,
kernel, stride, groups, spatial size) is cut out as an ONNX graph of its own (cut.py) and
timed through the one timing harness, at the deployment's threads and runtime, in several
groups, each file keeping its fastest (LAYER_GROUPS; measure_grid times the grid points
that fit and check the table in groups between the table's). So is
every distinct pair of a layer and the layer it feeds: alone, each layer pays its runtime's
layout conversions at the graph's edges, which the whole model pays once
(`cut._edges`). A candidate is predicted from the sum of its layers less what its edges
save, scaled and offset by a line fitted on a few fully measured grid points; other
measured grid points, held out of the fit, report the error.

Every layer's time is taken net of an empty graph's (an Identity): each cut-out session pays
the runtime's per-call cost, which a whole model pays once, and the fitted overhead holds
that once.

Measurements go through `FitMeasure` (tests inject their own), so no decision depends on the
speed of the machine running the tests.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from edgecnn.errors import EdgeCNNError
from edgecnn.fit.cut import empty_graph, split
from edgecnn.timing.files import ITERS, ROUNDS

EMPTY = "empty"  # the Identity graph's key in a table
# Groups the cut-out graphs are timed in, each file keeping its fastest. A layer takes
# microseconds, and what an edge saves is a difference of three such timings: one group's
# table can be far off while the whole models it predicts time the same from group to
# group. MobileNet v1's 12-point grid on the 2-core EPYC, 1 thread, two runs of 8 groups,
# the held-out error of every choice of k groups (median / worst): k=2 4.1/11.7% and
# 9.6/34.4%, k=4 2.6/6.8% and 4.9/11.9%, k=6 1.4/4.0% and 4.8/7.7%. A group there is ~4 s.
LAYER_GROUPS = 6


class FitMeasure(Protocol):
    """What fit measures latency with: this machine (MeasuredHere) or a device
    (remote/measure.py RemoteMeasure). Beyond `time`, a measure may have `threads` (already
    checked against its device's cores), `identity()` (the device fit.json names; default:
    this machine), `tune(artifact, log)` (an int8 candidate tuned where it is measured;
    default: `edgecnn tune` here) and `for_layers()` (the measure the table's cut-out
    graphs are timed with; default: itself)."""

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        """p50 ms at batch 1 of each ONNX file (one 4-D input each), timed side by side."""


@dataclass(frozen=True)
class MeasuredHere:
    """This machine, through the timing harness (interleaved, rotated rounds), in ONNX
    Runtime at the deployment's thread count: how tune times whole files."""

    threads: int
    runtime: str = "onnxruntime"
    iters: int = ITERS
    rounds: int = ROUNDS
    parked: bool = False  # worker threads stop spinning as each run returns

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        from edgecnn.timing.files import time_files

        return time_files(files, self.runtime, self.threads, iters=self.iters,
                          rounds=self.rounds, parked=self.parked)

    def for_layers(self) -> MeasuredHere:
        """Parked: with more than one thread, ONNX Runtime's workers spin about 50 ms after
        each run, and the harness waits for them before the next file's block. A table
        times hundreds of small files, eight blocks each, twice: 217 s for six MobileNet
        v1 grid points at 2 threads on the 2-core EPYC, 4 s parked. Waking the parked
        workers is a cost per call, which every cut-out graph pays alike, as it pays the
        call: the pairs and the fitted offset take it off with the call's. (At 2 threads on
        that VM the check could not tell: the same whole files timed up to 46% apart from
        one table to the next, and the held-out error was 14-21% in three tables.)"""
        return replace(self, parked=True)

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


# --- the table and the predictor --------------------------------------------------------------

@dataclass
class LatencyTable:
    """Net ms per distinct layer and what each edge between two layers saves; which layers
    and edges each graph is made of."""

    layers_ms: dict[str, float]  # layer key -> ms net of the empty call
    describe: dict[str, str]  # layer or edge key -> what it is
    graphs: dict[str, list[str]]  # graph name -> its layer keys, in order
    empty_ms: float
    overhead_ms: float = 0.0  # fitted: predict = scale x layer_sum + overhead
    scale: float = 1.0
    check: dict[str, Any] = field(default_factory=dict)  # the held-out error, reported
    params: dict[str, int] = field(default_factory=dict)  # graph name -> weight elements
    # int8: (weight elements, int8 ms / fp32 ms) of the fit points timed whole in both
    int8_ratios: list[tuple[float, float]] = field(default_factory=list)
    # edge key -> ms saved there: producer + consumer - the pair, net of the empty call
    edges_ms: dict[str, float] = field(default_factory=dict)
    graph_edges: dict[str, list[str]] = field(default_factory=dict)  # graph -> edge keys

    def layer_sum(self, graph: str) -> float:
        """The graph's layers, each timed alone, less what its edges save."""
        return (sum(self.layers_ms[k] for k in self.graphs[graph])
                - sum(self.edges_ms[k] for k in self.graph_edges.get(graph, ())))

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
                "graphs": self.graphs,
                "edges": {k: {"ms": v, "edge": self.describe[k]}
                          for k, v in self.edges_ms.items()},
                "graph_edges": self.graph_edges}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        edges = data.get("edges", {})  # none in tables written before edges were timed
        return cls({k: v["ms"] for k, v in data["layers"].items()},
                   {**{k: v["layer"] for k, v in data["layers"].items()},
                    **{k: v["edge"] for k, v in edges.items()}}, data["graphs"],
                   data["empty_ms"], data["overhead_ms"], data["scale"], data["check"],
                   data.get("params", {}), [tuple(p) for p in data.get("int8_ratios", [])],
                   {k: v["ms"] for k, v in edges.items()}, data.get("graph_edges", {}))


@dataclass(frozen=True)
class _CutOuts:
    """The grid's cut-out graphs, saved, and which layers and edges each graph is made of."""

    files: dict[str, Path]  # layer or edge key (and EMPTY) -> its saved graph
    pairs: dict[str, tuple[str, str]]  # edge key -> (producer, consumer) layer keys
    describe: dict[str, str]
    members: dict[str, list[str]]
    edges_of: dict[str, list[str]]
    params: dict[str, int]  # graph name -> weight elements


def _cut_outs(graphs: dict[str, Any], scratch: Path) -> _CutOuts:
    import onnx

    one_node: dict[str, Any] = {}
    pairs: dict[str, tuple[Any, str, str]] = {}  # edge -> (ONNX proto, producer, consumer)
    describe: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    edges_of: dict[str, list[str]] = {}
    for name, proto in graphs.items():
        parts, edges = split(proto)
        members[name] = [layer.key for layer, _ in parts]
        for layer, one in parts:
            one_node.setdefault(layer.key, one)
            describe[layer.key] = layer.describe
        edges_of[name] = [edge.key for edge, _ in edges]
        for edge, two in edges:
            pairs.setdefault(edge.key, (two, edge.producer, edge.consumer))
            describe[edge.key] = edge.describe
    some = next(iter(graphs.values()))
    files = {EMPTY: scratch / "empty.onnx"}
    scratch.mkdir(parents=True, exist_ok=True)
    onnx.save_model(empty_graph(some.ir_version, some.opset_import), str(files[EMPTY]))
    for key, one in [*one_node.items(), *((k, v[0]) for k, v in pairs.items())]:
        files[key] = scratch / f"{key}.onnx"
        onnx.save_model(one, str(files[key]))
    params = {name: sum(math.prod(t.dims) for t in proto.graph.initializer)
              for name, proto in graphs.items()}
    return _CutOuts(files, {k: (p, c) for k, (_, p, c) in pairs.items()}, describe, members,
                    edges_of, params)


def _assemble(cuts: _CutOuts, ms: dict[str, float]) -> LatencyTable:
    """The table from the cut-outs' times (ms by key, EMPTY's among them)."""
    empty = ms[EMPTY]
    # A layer faster than the empty call is noise around zero, not negative time.
    net = {k: max(0.0, ms[k] - empty) for k in cuts.files if k != EMPTY and k not in cuts.pairs}
    saved = {k: net[p] + net[c] - (ms[k] - empty) for k, (p, c) in cuts.pairs.items()}
    return LatencyTable(net, dict(cuts.describe), cuts.members, empty, params=cuts.params,
                        edges_ms=saved, graph_edges=cuts.edges_of)


def _layer_measure(measure: FitMeasure) -> FitMeasure:
    for_layers = getattr(measure, "for_layers", None)
    return for_layers() if for_layers is not None else measure


@dataclass
class GridTimings:
    """A grid's table and the grid points timed whole: `fit` fit its line, `held_out` check
    it (measured_points); `whole_ms` is each one's fastest group, `whole_groups` how many
    groups that was."""

    table: LatencyTable
    fit: list[str]
    held_out: list[str]
    whole_ms: dict[str, float]
    whole_files: dict[str, Path]
    whole_groups: int


def measure_grid(graphs: dict[str, Any], measure: FitMeasure, scratch: Path,
                 whole_dir: Path, log: Callable[[str], None] = lambda line: None
                 ) -> GridTimings:
    """The table, and the grid points it is checked on timed whole, in groups that alternate
    with the table's: the first group of layers orders the graphs (measured_points), then a
    group of the whole points follows each group of layers. The machine's speed changes for
    seconds at a time (the 2-core EPYC, 1 thread: MobileNet v1 1.0x/64 px timed 1.27-1.70 ms
    in six consecutive groups); spread over the same stretch as the layers', the whole
    points' fastest groups and the table's are taken at the same speed. The latency phase
    on that grid, five runs each, the line's worst error over the three held-out points:
    1.9-8.8% so, 1.9-17.6% with the whole points timed in two groups after the table. Whole
    points run as they deploy (`measure`); layers through `measure.for_layers()` where it
    has one."""
    import onnx

    cuts = _cut_outs(graphs, scratch)
    total = sum(len(v) for v in cuts.members.values())
    log(f"timing {len(cuts.files) - len(cuts.pairs) - 1} distinct layers ({total} in "
        f"{len(graphs)} graphs), {len(cuts.pairs)} pairs of a layer and the next, and an empty "
        f"graph, in {LAYER_GROUPS} groups (each one's fastest time)")
    layer_measure = _layer_measure(measure)
    layer_groups = [layer_measure.time(cuts.files)]
    first = _assemble(cuts, layer_groups[0])
    fit_pts, held = measured_points(sorted(graphs, key=first.layer_sum))
    whole_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in fit_pts + held:
        files[name] = whole_dir / f"{name}.onnx"
        onnx.save_model(graphs[name], str(files[name]))
    log(f"and {len(files)} grid points whole, a group after each group of layers: "
        f"{len(fit_pts)} fit the table, {len(held)} check it")
    whole_groups = []
    for _ in range(LAYER_GROUPS - 1):
        whole_groups.append(measure.time(files))
        layer_groups.append(layer_measure.time(cuts.files))
    whole_groups.append(measure.time(files))
    return GridTimings(_assemble(cuts, fastest(layer_groups)), fit_pts, held,
                       fastest(whole_groups), files, len(whole_groups))


def calibrate(table: LatencyTable, measured: dict[str, float], fit: list[str],
              held_out: list[str]) -> None:
    """Scale and overhead from the fit points, the error on the held-out ones (the issue's
    goal: within 10%). With three or more fit points, a least-squares line: layers timed
    alone run with their weights hot in cache, which a whole model streams (MobileNet v1
    1.0x at 64 px on the EPYC, 1 thread: its table sum, edges taken off, about 0.93x the
    whole), and the one call a whole model pays sits in the offset. With fewer, the
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
