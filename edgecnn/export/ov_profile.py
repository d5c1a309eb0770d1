"""Kernel time per block in OpenVINO: its per-layer counters (PERF_COUNT), the counterpart
of export/mixed.py's `profile_blocks` for ONNX Runtime.

OpenVINO names the nodes it runs after the ONNX nodes they came from
('/features/features.3/expand1x1/expand1x1.0/Conv/WithoutBiases'), so each maps to a block
by mixed.block_of. A reorder it inserts between layouts is named after the node that reads
it ('_abcd_acdb_/features/features.0/Conv/WithoutBiases') and counts in that node's block:
whether a Concat or a merged convolution runs in a blocked layout changes which reorders
there are. Needs openvino, not torch.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgecnn.export.mixed import PROFILE_ROUNDS, PROFILE_WARMUP, block_of


def profile_blocks_ov(protos: list[onnx.ModelProto], x: np.ndarray, blocks: dict[str, str],
                      threads: int, runs: int) -> list[dict[str, float]]:
    """Per graph: block -> kernel ms per run (each node's median over `runs` runs). The
    graphs run in alternating rounds with a settle pause, as the bench harness times them.
    `blocks`: module prefix -> block (mixed.graph_blocks' alias)."""
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner
    from edgecnn.timing.harness import wait_until_idle
    from edgecnn.timing.loop import TimingPlan

    per_round = max(1, -(-runs // PROFILE_ROUNDS))
    samples: list[dict[str, list[float]]] = [{} for _ in protos]
    runners: list[OvRunner] = []
    try:
        for proto in protos:  # OvRunner reads a model's bytes as it reads a file
            runners.append(OvRunner(proto.SerializeToString(), "cpu",
                                    OvOptions(threads=threads, perf_count=True)))
            runners[-1].activate()
        for _ in range(PROFILE_ROUNDS):
            for runner, nodes in zip(runners, samples):
                wait_until_idle(TimingPlan().settle_s)
                for i in range(PROFILE_WARMUP + per_round):
                    runner.infer(x)
                    if i >= PROFILE_WARMUP:
                        for p in runner.request.profiling_info:
                            nodes.setdefault(p.node_name, []).append(
                                p.real_time.total_seconds() * 1e3)
    finally:
        for runner in runners:
            runner.deactivate()
    out = []
    for nodes in samples:
        times: dict[str, float] = {}
        for name, ms in nodes.items():
            if name.startswith("_") and "_/" in name:  # a reorder: its reader's block
                name = name[name.index("_/") + 1:]
            block = blocks.get(block_of(name))
            if block is not None:
                times[block] = times.get(block, 0.0) + float(np.median(ms))
        out.append(times)
    return out
