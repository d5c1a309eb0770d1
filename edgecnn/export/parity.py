"""Two independent consumers of every fp32 artifact, and the latency probe for pruning.

Parity: ONNX Runtime and OpenVINO (f32 precision hint: it defaults to bf16 on CPUs that
have it) each run the ONNX file on random and on real inputs, and their logits must match
PyTorch's within 1e-4 (max abs, on logits scaled to at most 1 when they are larger). Some
networks are so ill-conditioned with initialized weights (SqueezeNext: no fp32 computation
of them, PyTorch's included, is within 1e-4 of exact arithmetic) that the bound is then
PyTorch fp32's own error against a float64 run, doubled: the export must add no error beyond
fp32 rounding. An export that fails parity is not written.

Both consumers are the runtime's own runners (edgecnn.runtime), fed the graph's bytes: what
export checks is what a device runs. Latency: the bench harness times the variants in
alternating blocks of runs, never interleaved run by run (ONNX Runtime's worker threads spin
after each run and would tax the other session).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import onnx
import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import Runner
from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
from edgecnn.runtime.ov_runner import OvOptions, OvRunner

TOLERANCE = 1e-4

Graph = Union[onnx.ModelProto, bytes, str, "os.PathLike[str]"]  # in memory, or a file


def _source(model: Graph) -> bytes | str | os.PathLike[str]:
    return model.SerializeToString() if isinstance(model, onnx.ModelProto) else model


def ort_runner(model: Graph, threads: int = 1, *, spinning: bool = True,
               quiet: bool = False) -> OrtRunner:
    """An active ONNX Runtime CPU runner: the runtime's own, as a device app gets it.
    `threads` 0 is ONNX Runtime's default (one per physical core); `spinning` False parks
    idle workers at once (work sharing busy cores); `quiet` silences ONNX Runtime's own
    error log (probes that may fail)."""
    runner = OrtRunner(_source(model), "cpu",
                       OrtOptions(threads=threads, spinning=spinning, quiet=quiet))
    runner.activate()
    return runner


def ort_session(model: Graph, threads: int = 1, *, spinning: bool = True) -> Any:
    """The InferenceSession inside `ort_runner`, for code that needs ONNX Runtime's own API
    (several outputs, `get_inputs`): the quantizer's and the guard's evaluation."""
    return ort_runner(model, threads, spinning=spinning).session


def openvino_runner(model: Graph, threads: int = 1) -> OvRunner:
    """An active OpenVINO CPU runner in f32 (its CPU default may be bf16)."""
    runner = OvRunner(_source(model), "cpu", OvOptions(precision="f32", threads=threads))
    runner.activate()
    return runner


def runner_logits(runner: Runner, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """A runner's outputs over the images `x`, in batches (its own when the model fixes it)."""
    step = runner.input.shape[0] or batch
    return np.concatenate([runner.infer(x[i:i + step]) for i in range(0, len(x), step)])


def parity_runners(model: Graph) -> tuple[OrtRunner, OvRunner]:
    """The two consumers `check_parity` compares against PyTorch, one thread each."""
    return ort_runner(model), openvino_runner(model)


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
                 consumers: tuple[OrtRunner, OvRunner] | None = None) -> ParityResult:
    """Max abs difference of ORT and OpenVINO logits to PyTorch's over the batch `x`, image
    by image; `consumers`: `parity_runners(proto)` when already made."""
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    ort, ov = consumers or parity_runners(proto)
    got_ort = np.concatenate([ort.infer(x[i:i + 1]) for i in range(len(x))])
    got_ov = np.concatenate([ov.infer(x[i:i + 1]) for i in range(len(x))])
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


def compare_latency(protos: dict[str, Graph], resolution: int, in_chans: int, *,
                    blocks: int = 5, runs: int = 20, threads: int = 1,
                    input_shape: tuple[int, int, int] | None = None) -> dict[str, float]:
    """Median latency (ms, batch 1) of each model in ONNX Runtime, by the bench harness:
    `blocks` interleaved rounds of `runs` timed calls each. `input_shape` (C, H, W) or
    (H, W, C) replaces the square NCHW (in_chans, resolution, resolution)."""
    from edgecnn.timing.harness import BenchCase, run_group
    from edgecnn.timing.loop import TimingPlan

    shape = input_shape or (in_chans, resolution, resolution)
    options = OrtOptions(threads=threads)
    cases = [BenchCase(model=key, runtime="onnxruntime", precision="fp32", batch=1,
                       input_shape=shape,
                       make_runner=lambda m=_source(proto): OrtRunner(m, "cpu", options))
             for key, proto in protos.items()]
    # One intra-op thread has no spinning workers to let settle: no pause between blocks.
    plan = TimingPlan(warmup=3, iters=blocks * runs, settle_s=0.0 if threads == 1 else 0.1)
    records = run_group(cases, plan, peak_gmacs=None, rounds=blocks)
    if len(records) != len(cases):
        raise EdgeCNNError("latency comparison interrupted")
    return {r.model: r.latency_ms_p50 for r in records}
