"""Two independent consumers of every fp32 artifact, and the latency probe for pruning.

Parity: ONNX Runtime and OpenVINO (f32 precision hint: it defaults to bf16 on CPUs that
have it) each run the ONNX file on random and on real inputs, and their logits must match
PyTorch's within 1e-4 (max abs, on logits scaled to at most 1 when they are larger). Some
networks are so ill-conditioned with initialized weights (SqueezeNext: no fp32 computation
of them, PyTorch's included, is within 1e-4 of exact arithmetic) that the bound is then
PyTorch fp32's own error against a float64 run, doubled: the export must add no error beyond
fp32 rounding. An export that fails parity is not written.

Latency: sessions are timed in alternating blocks of runs, never interleaved run by run
(ONNX Runtime's worker threads spin after each run and would tax the other session).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_io import INPUT_NAME

TOLERANCE = 1e-4


def ort_session(proto_or_path: onnx.ModelProto | str, threads: int = 1, *,  # noqa: ANN201
                spinning: bool = True):
    """A CPU session; `threads` 0 is ONNX Runtime's default (one per physical core);
    `spinning` False parks idle workers at once (throughput work sharing busy cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = proto_or_path.SerializeToString() if isinstance(proto_or_path, onnx.ModelProto) \
        else str(proto_or_path)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def openvino_model(proto: onnx.ModelProto):  # noqa: ANN201
    import openvino as ov

    core = ov.Core()
    model = core.read_model(proto.SerializeToString(), b"")
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                             "INFERENCE_NUM_THREADS": 1})


@dataclass
class ParityResult:
    inputs: str  # "random" or the data set the real images came from
    images: int
    onnxruntime_max_abs: float
    openvino_max_abs: float
    logits_max_abs: float  # the scale of what was compared
    torch_fp32_error: float = 0.0  # PyTorch fp32 vs float64, same scaling as `relative`

    @property
    def relative(self) -> float:
        """Worst difference over the logits' scale when above 1: fp32 summation order alone
        moves logits by ~1e-7 of their size, so 1e-4 is judged on O(1)-scaled logits."""
        return max(self.onnxruntime_max_abs, self.openvino_max_abs) / max(1.0, self.logits_max_abs)

    @property
    def tolerance(self) -> float:
        return max(TOLERANCE, 2 * self.torch_fp32_error)

    @property
    def ok(self) -> bool:
        return self.relative <= self.tolerance


def check_parity(model: nn.Module, proto: onnx.ModelProto, x: np.ndarray, inputs: str,
                 consumers: tuple | None = None) -> ParityResult:
    """Max abs difference of ORT and OpenVINO logits to PyTorch's over the batch `x`;
    `consumers`: (ORT session, OpenVINO compiled model) of `proto` when already made."""
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    session, compiled = consumers or (ort_session(proto), openvino_model(proto))
    got_ort = np.concatenate([session.run(None, {INPUT_NAME: x[i:i + 1]})[0]
                              for i in range(len(x))])
    got_ov = np.concatenate([compiled(x[i:i + 1])[0] for i in range(len(x))])
    result = ParityResult(
        inputs=inputs, images=len(x),
        onnxruntime_max_abs=float(np.abs(got_ort - expected).max()),
        openvino_max_abs=float(np.abs(got_ov - expected).max()),
        logits_max_abs=float(np.abs(expected).max()),
    )
    if not result.ok:  # is it the export, or fp32 itself on an ill-conditioned network?
        import copy

        with torch.no_grad():
            exact = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
        result.torch_fp32_error = float(np.abs(expected - exact).max()) / max(
            1.0, result.logits_max_abs)
    return result


def require_parity(results: list[ParityResult]) -> None:
    for r in results:
        if not r.ok:
            raise EdgeCNNError(
                f"parity check failed on {r.inputs} inputs: ONNX Runtime differs from PyTorch by "
                f"{r.onnxruntime_max_abs:.2e}, OpenVINO by {r.openvino_max_abs:.2e} (max abs, "
                f"logits up to {r.logits_max_abs:.2g}, tolerance {r.tolerance:.2g}); "
                "nothing was written")


def compare_latency(protos: dict[str, onnx.ModelProto], resolution: int, in_chans: int, *,
                    blocks: int = 5, runs: int = 20, threads: int = 1) -> dict[str, float]:
    """Median per-run latency (ms, batch 1) of each model, timed in alternating blocks."""
    sessions = {k: ort_session(p, threads) for k, p in protos.items()}
    x = np.random.default_rng(0).standard_normal((1, in_chans, resolution, resolution),
                                                 dtype=np.float32)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(blocks):
        for key, session in sessions.items():
            for _ in range(3):  # warm-up of this block: caches, thread pool
                session.run(None, {INPUT_NAME: x})
            start = time.perf_counter()
            for _ in range(runs):
                session.run(None, {INPUT_NAME: x})
            times[key].append((time.perf_counter() - start) / runs * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}
