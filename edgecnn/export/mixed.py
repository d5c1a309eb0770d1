"""Latency-aware mixed precision: each block of the model runs in int8 only where that is
faster, measured in ONNX Runtime on the exporting machine.

    timer = MeasuredTimer((1, 3, 224, 224), MixedConfig())
    search = search_blocks(pre, make, timer, log=print)
    # search.float_nodes -> run_guard(keep_float=...), search.proto -> its first candidate
    latency = timer.time(fp32, final_int8)         # after the guard: decision.Latency

A block is a module of the network as the exporter names its nodes: `/features/features.4`
(MobileNet v3's inverted residual with its hard-swish and squeeze-excitation), `/fire3`...
Int8 is not free at batch 1: a Q/DQ pair around an op that stays float (hard-swish's
HardSigmoid and Mul, the SE's ReduceMean) and x86's u8 x s8 kernels at few channels cost
more than the int8 convolution saves, while fp32's NCHWc kernels fuse those activations.

1. Profile the fp32 graph and the all-int8 graph side by side (ONNX Runtime's profiler, one
   session each, `profile_runs` runs in alternating blocks): each node's median kernel
   time, summed per block (the optimized graph's nodes mapped back to the block that names
   them or their tensors).
2. Every block whose int8 time (its Q/DQ nodes included) is not below its fp32 time stays
   float: all its nodes are excluded from quantization, so ONNX Runtime's quantizer puts the
   Q/DQ pairs only where an int8 block meets a float one, never around a float op inside.
3. Profile that mixed graph beside fp32; each run of int8 blocks that no longer saves time
   (its boundary pairs counted) goes float too, for `refine_rounds` rounds. The candidate
   with the least profiled time wins; all-float (the fp32 graph) is a candidate too: when it
   wins, there is no int8 file (decision.choose).
4. After the accuracy guard, `Timer.time` times the final graph against fp32 with the bench
   harness (interleaved blocks, settle pause), and `decision.choose` says whether int8 pays:
   when no runtime times it faster beyond the noise, no int8 file is written (the profile's
   choice was wrong for this machine).
Every measurement goes through a `Timer` (MeasuredTimer: this machine), which tests replace
with their own so that the decision is deterministic there.
The cost is bounded: at most 2 + refine_rounds profiled pairs and 2 + refine_rounds
quantizations (calibration is cached), reported in seconds in `MixedResult.record`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx

from edgecnn.export.decision import Latency
from edgecnn.export.onnx_io import INPUT_NAME

# A profile runs each graph in this many alternating rounds, each after this many untimed
# runs (ONNX Runtime here, OpenVINO in ov_profile.py).
PROFILE_ROUNDS, PROFILE_WARMUP = 4, 3


@dataclass(frozen=True)
class MixedConfig:
    threads: int = 1  # intra-op threads of the profiled and verified sessions
    profile_runs: int = 16  # profiled runs per candidate, in 4 alternating blocks
    refine_rounds: int = 2  # extra profiled candidates after the first decision
    margin: float = 0.97  # int8 kept for a block when int8_ms < margin * fp32_ms
    verify_iters: int = 48  # timed calls per case in the verification (bench harness)
    verify_rounds: int = 4  # short interleaved blocks: a shared machine drifts within seconds


@dataclass
class Block:
    name: str
    nodes: list[str]  # node names in the fp32 graph (what nodes_to_exclude takes)
    fp32_ms: float = 0.0  # profiled kernel time per run, fp32 graph
    int8_ms: float = 0.0  # all-int8 graph, Q/DQ nodes included
    precision: str = "int8"  # the decision

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.name, "precision": self.precision, "nodes": len(self.nodes),
                "fp32_ms": round(self.fp32_ms, 4), "int8_ms": round(self.int8_ms, 4)}


@dataclass
class MixedResult:
    proto: onnx.ModelProto  # the fastest candidate (the guard's first)
    float_nodes: list[str]
    blocks: list[Block]
    record: dict[str, Any] = field(default_factory=dict)


def block_of(name: str) -> str:
    """'/features/features.4/block/block.0/Conv' -> '/features/features.4'; '/conv1/Conv' ->
    '/conv1'; a name without a module path is its own block."""
    parts = name.split("/")
    if len(parts) > 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2]) if len(parts) == 3 else name


def graph_blocks(proto: onnx.ModelProto) -> dict[str, list[str]]:
    """Block -> its node names, in graph order. A module with no Conv/Gemm/MatMul (a ReLU,
    pool or Flatten at the top of a flat nn.Sequential, as in LeNet or VGG) joins the block
    before it: ONNX Runtime fuses an activation into its convolution, so they are timed and
    decided together. Unnamed nodes cannot be excluded: skipped (quantize.preprocess names
    them)."""
    return _grouped(proto)[0]


def _grouped(proto: onnx.ModelProto) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(block -> node names, module prefix -> block)."""
    from edgecnn.export.quantize import QUANTIZED_OPS

    raw: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        if node.name:
            raw.setdefault(block_of(node.name), []).append(node)
    blocks: dict[str, list[str]] = {}
    alias: dict[str, str] = {}
    current = None
    for prefix, nodes in raw.items():
        if current is None or any(n.op_type in QUANTIZED_OPS for n in nodes):
            current = prefix
        alias[prefix] = current
        blocks.setdefault(current, []).extend(n.name for n in nodes)
    return blocks, alias


def search_blocks(
    pre: onnx.ModelProto,
    make: Callable[[list[str]], onnx.ModelProto],
    timer: Timer,
    config: MixedConfig = MixedConfig(),
    *,
    reference: onnx.ModelProto | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> MixedResult:
    """`pre`: the preprocessed float graph, whose node names `make(exclude)` keeps in float
    in its int8 model (calibrated once, cached by the caller). `reference`: the fp32 graph
    deployed beside the int8 one (model.onnx; default `pre`): every candidate is profiled
    against it, and it is the all-float candidate, so "no block pays" yields a file exactly
    as fast as model.onnx."""
    started = time.perf_counter()
    fp32 = reference if reference is not None else pre
    grouped, names = _grouped(pre)
    blocks = [Block(k, v) for k, v in grouped.items()]
    all_int8 = make([])
    ref, got = timer.profile([fp32, all_int8], names)
    for b in blocks:
        b.fp32_ms, b.int8_ms = ref.get(b.name, 0.0), got.get(b.name, 0.0)
        b.precision = "int8" if b.int8_ms < config.margin * b.fp32_ms else "float"
    candidates = [("int8", all_int8, [], sum(got.values()))]
    for round_ in range(1 + config.refine_rounds):
        floats = [b.name for b in blocks if b.precision == "float"]
        if floats == candidates[-1][2] or len(floats) == len(blocks):
            break
        proto = make([n for b in blocks if b.precision == "float" for n in b.nodes])
        ref_now, mixed = timer.profile([fp32, proto], names)
        # against the fp32 profiled beside it: a busy machine slows both alike
        scale = sum(ref.values()) / max(sum(ref_now.values()), 1e-9)
        mixed = {k: v * scale for k, v in mixed.items()}
        candidates.append((f"mixed_{round_ + 1}", proto, floats, sum(mixed.values())))
        _float_slow_runs(blocks, mixed, config.margin)
    # no block pays: the fp32 graph itself
    candidates.append(("float", fp32, [b.name for b in blocks], sum(ref.values())))
    fp32_total = sum(ref.values())
    label, proto, float_blocks, best_ms = min(candidates, key=lambda c: c[3])
    chosen = set(float_blocks)
    for b in blocks:  # the decisions of the candidate kept
        b.precision = "float" if b.name in chosen else "int8"
    float_nodes = [n for b in blocks if b.name in chosen for n in b.nodes]
    record = {
        "runtime": "onnxruntime", "threads": config.threads, "batch": 1,
        "method": "ONNX Runtime profiler, kernel time per block, one profiled session of "
                  f"{config.profile_runs} runs per candidate",
        "candidates_profiled_ms": {"fp32": round(fp32_total, 4),
                                   **{c[0]: round(c[3], 4) for c in candidates}},
        "chosen": label, "float_blocks": sorted(chosen),
        "blocks": [b.to_dict() for b in blocks],
        "search_s": round(time.perf_counter() - started, 2),
        "profiled_sessions": 2 * (len(candidates) - 1),
    }
    log(f"int8 blocks: {len(blocks) - len(chosen)} of {len(blocks)} in int8 ({label}), "
        f"profiled {fp32_total:.3f} ms fp32 -> {best_ms:.3f} ms; search "
        f"{record['search_s']:.1f} s")
    return MixedResult(proto, float_nodes, blocks, record)


def _float_slow_runs(blocks: list[Block], mixed: dict[str, float], margin: float) -> None:
    """Each maximal run of int8 blocks goes float unless it saves time in the mixed graph,
    counting what it costs its float neighbours (the boundary Q/DQ pairs are named after
    their tensors, so a run's input Q shows up in the block before it)."""
    i = 0
    while i < len(blocks):
        if blocks[i].precision != "int8":
            i += 1
            continue
        j = i
        while j < len(blocks) and blocks[j].precision == "int8":
            j += 1
        around = blocks[max(i - 1, 0):j + 1]
        delta = sum(mixed.get(b.name, 0.0) - b.fp32_ms for b in around)
        if delta >= -(1 - margin) * sum(b.fp32_ms for b in blocks[i:j]):
            for b in blocks[i:j]:
                b.precision = "float"
        i = j


def profile_blocks(protos: list[onnx.ModelProto], x: np.ndarray, blocks: dict[str, str],
                   config: MixedConfig) -> list[dict[str, float]]:
    """Kernel time per run (ms) of each block of each graph: ONNX Runtime's profiler, one
    session per graph, the sessions run in alternating blocks of runs with a settle pause
    (as the bench harness times), each node's median over the runs (a preempted run on a
    busy machine moves a median little).

    The profiler names the nodes of the optimized graph (fused QLinearConv, inlined
    hard-swish, NCHWc reorders); each is mapped to a block by its name, else by the names of
    the tensors it reads or writes (the exporter's tensor names carry the module path).
    `blocks`: module prefix -> block (see graph_blocks)."""
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    from edgecnn.timing.harness import wait_until_idle
    from edgecnn.timing.loop import TimingPlan

    rounds, warmup, settle = PROFILE_ROUNDS, PROFILE_WARMUP, TimingPlan().settle_s
    per_round = max(1, -(-config.profile_runs // rounds))
    with tempfile.TemporaryDirectory() as tmp:
        runners = []
        try:
            for i, proto in enumerate(protos):
                opts = OrtOptions(threads=config.threads, inter_op_threads=1, quiet=True,
                                  profile_prefix=str(Path(tmp, f"profile{i}")),
                                  optimized_model_path=str(Path(tmp, f"optimized{i}.onnx")))
                runner = OrtRunner(proto.SerializeToString(), "cpu", opts)
                runner.activate()
                runners.append(runner)
            for _ in range(rounds):
                for runner in runners:
                    wait_until_idle(settle)  # the other session's workers stop spinning
                    for _ in range(warmup + per_round):
                        runner.infer(x)
            results = []
            for runner in runners:
                events = json.loads(runner.end_profiling().read_text(encoding="utf-8"))
                optimized = onnx.load(runner.options.optimized_model_path,
                                      load_external_data=False)
                results.append(_block_times(events, _node_blocks(optimized, blocks), warmup,
                                            per_round))
        finally:
            for runner in runners:
                runner.deactivate()
    return results


def _block_times(events: list[dict], where: dict[str, str], warmup: int,
                 per_round: int) -> dict[str, float]:
    per_node: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_node.setdefault(e["name"][:-len("_kernel_time")], []).append(e["dur"] / 1e3)
    out: dict[str, float] = {}
    for node, durations in per_node.items():
        runs = len(durations) // (warmup + per_round) or 1
        timed = [d for k in range(runs) for d in durations[k * (warmup + per_round) + warmup:
                                                           (k + 1) * (warmup + per_round)]]
        block = where.get(node, "(unattributed)")
        out[block] = out.get(block, 0.0) + float(np.median(timed or durations))
    return out


def _node_blocks(graph_proto: onnx.ModelProto, blocks: dict[str, str]) -> dict[str, str]:
    first = next(iter(blocks.values()), "(unattributed)")
    out = {}
    for node in graph_proto.graph.node:
        found = next((blocks[block_of(t)] for t in (node.name, *node.output, *node.input)
                      if block_of(t) in blocks), None)
        if found is None and INPUT_NAME in node.input:
            found = first  # the input's Q: the first block pays it
        out[node.name] = found or "(unattributed)"
    return out


def pointless_pairs(proto: onnx.ModelProto, float_nodes: list[str] | set[str]) -> list[str]:
    """Q/DQ pairs that quantize a tensor made by a float node only for float nodes to read
    it back: a round trip that costs time and adds noise for nothing (empty when the
    boundary pairs sit only where int8 meets float)."""
    floats = set(float_nodes)
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in proto.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    bad = []
    for q in (n for n in proto.graph.node if n.op_type == "QuantizeLinear"):
        src = producer.get(q.input[0])
        if src is None or src.name not in floats:
            continue
        readers = [r for dq in consumers.get(q.output[0], []) if dq.op_type == "DequantizeLinear"
                   for r in consumers.get(dq.output[0], [])]
        if readers and all(r.name in floats for r in readers):
            bad.append(q.input[0])
    return bad


# --------------------------------------------------------------------------------------------
# Every measurement the int8 decision takes goes through a Timer: the export's is
# MeasuredTimer (this machine, ONNX Runtime's profiler and the bench harness); tests inject
# their own through Int8Spec(timer=...) so that the decision is deterministic there.

class Timer(Protocol):
    def profile(self, graphs: list[onnx.ModelProto], blocks: dict[str, str]
                ) -> list[dict[str, float]]:
        """Kernel ms per run of each block (module prefix -> block: `blocks`) of each graph,
        measured side by side."""

    def time(self, fp32: onnx.ModelProto, int8: onnx.ModelProto) -> Latency:
        """Whole-graph p50 of fp32 and int8 in each CPU runtime, side by side."""


@dataclass(frozen=True)
class MeasuredTimer:
    input_shape: tuple[int, ...]  # (1, C, H, W)
    config: MixedConfig = MixedConfig()

    def profile(self, graphs: list[onnx.ModelProto], blocks: dict[str, str]
                ) -> list[dict[str, float]]:
        x = np.random.default_rng(0).standard_normal(self.input_shape, dtype=np.float32)
        return profile_blocks(graphs, x, blocks, self.config)

    def time(self, fp32: onnx.ModelProto, int8: onnx.ModelProto) -> Latency:
        """p50 latency (ms) of fp32 and int8, batch 1, `config.threads` threads, in ONNX
        Runtime and (when installed) OpenVINO: the four cases timed by the bench harness,
        interleaved in rounds. The search measured ONNX Runtime only; OpenVINO's own int8
        transformations can disagree, and the verdict says so per runtime."""
        from edgecnn.runtime.loader import installed, runner_class
        from edgecnn.timing.harness import BenchCase, run_group
        from edgecnn.timing.loop import STEADY_BLOCK_S, TimingPlan

        config = self.config
        runtimes = [r for r in ("onnxruntime", "openvino") if installed(r)]
        with tempfile.TemporaryDirectory() as tmp:
            cases = []
            for precision, proto in (("fp32", fp32), ("int8", int8)):
                path = Path(tmp, f"{precision}.onnx")
                onnx.save_model(proto, str(path))
                for runtime in runtimes:
                    cls = runner_class(runtime)
                    opts = cls.options_type.from_kwargs(runtime, {"threads": config.threads})
                    cases.append(BenchCase(
                        "export", runtime, precision, 1, input_shape=tuple(self.input_shape[1:]),
                        make_runner=lambda c=cls, p=path, o=opts: c(p, "cpu", o)))
            records = run_group(cases, TimingPlan(iters=config.verify_iters,
                                                  min_block_s=STEADY_BLOCK_S),
                                peak_gmacs=None, rounds=config.verify_rounds)
        if len(records) < len(cases):  # the harness stops early on Ctrl-C: pass it on
            raise KeyboardInterrupt
        ms = {(r.runtime, r.precision): r.latency_ms_p50 for r in records}
        return Latency(config.threads, {k: ms[(k, "fp32")] for k in runtimes},
                       {k: ms[(k, "int8")] for k in runtimes},
                       f"bench harness, {config.verify_rounds} interleaved rounds, "
                       f"{config.verify_iters} calls per case, p50")
