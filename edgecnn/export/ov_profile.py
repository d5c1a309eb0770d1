"""Kernel time per block in OpenVINO: its per-layer counters (PERF_COUNT), the counterpart
of export/mixed.py's `profile_blocks` for ONNX Runtime.

OpenVINO names the nodes it runs after the ONNX nodes they came from
('/features/features.3/expand1x1/expand1x1.0/Conv/WithoutBiases'), so each maps to a block
by mixed.block_of; the reorders it inserts between layouts ('_abcd_acdb_/features/...')
belong to no block and are left out. Needs openvino, not torch.
"""

from __future__ import annotations

import io

import numpy as np
import onnx

from edgecnn.export.mixed import block_of

ROUNDS, WARMUP = 4, 3


def profile_blocks_ov(protos: list[onnx.ModelProto], x: np.ndarray, blocks: dict[str, str],
                      threads: int, runs: int) -> list[dict[str, float]]:
    """Per graph: block -> kernel ms per run (each node's median over `runs` runs). The
    graphs run in alternating rounds with a settle pause, as the bench harness times them.
    `blocks`: module prefix -> block (mixed.graph_blocks' alias)."""
    from openvino.frontend import FrontEndManager

    from edgecnn.runtime.ov_runner import core
    from edgecnn.timing.harness import wait_until_idle
    from edgecnn.timing.loop import TimingPlan

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
              "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True}
    requests = []
    for proto in protos:
        frontend = FrontEndManager().load_by_framework("onnx")
        model = frontend.convert(frontend.load(io.BytesIO(proto.SerializeToString())))
        requests.append(core().compile_model(model, "CPU", config).create_infer_request())
    per_round = max(1, -(-runs // ROUNDS))
    samples: list[dict[str, list[float]]] = [{} for _ in protos]
    for _ in range(ROUNDS):
        for request, nodes in zip(requests, samples):
            wait_until_idle(TimingPlan().settle_s)
            for i in range(WARMUP + per_round):
                request.infer({0: x}, share_inputs=True)
                if i >= WARMUP:
                    for p in request.profiling_info:
                        nodes.setdefault(p.node_name, []).append(
                            p.real_time.total_seconds() * 1e3)
    out = []
    for nodes in samples:
        times: dict[str, float] = {}
        for name, ms in nodes.items():
            block = blocks.get(block_of(name))
            if block is not None:
                times[block] = times.get(block, 0.0) + float(np.median(ms))
        out.append(times)
    return out
