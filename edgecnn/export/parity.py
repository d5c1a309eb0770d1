"""Two independent consumers of every fp32 artifact, and the latency probe for pruning.

Parity: ONNX Runtime and OpenVINO (f32 precision hint: it defaults to bf16 on CPUs that
have it) each run the ONNX file on random and on real inputs, and each one's logits are
judged against exact arithmetic: the PyTorch model run in float64. An export that fails
parity is not written. Both consumers are the runtime's own runners (edgecnn.runtime), fed
the graph's bytes: what export checks is what a device runs. OpenVINO is an optional
install (`edgecnn[openvino]`): without it, ONNX Runtime alone is judged and the report
says OpenVINO was not checked (its fields are None).

The rule. No fp32 computation of a network is exact: each kernel sums in its own order (SSE,
AVX2, AVX-512, NEON blockings differ), so an honest runtime is off the float64 logits by
about as much as PyTorch fp32 is, on whatever CPU. The budget is therefore measured, on the
same images, in the logits' own units, never fixed:

    rounding  = max(|PyTorch fp32 - float64|, |float64 with rounding injected - float64|)
    tolerance = SLACK * rounding;  passes iff max |runtime - float64| <= tolerance, per runtime

"Rounding injected" re-runs the float64 model with every leaf module's output multiplied by
(1 + eps32 * N(0, 1)): what fp32 rounding at each layer does to these logits, through this
network's own gains. The two terms are independent estimates of the same thing (within
0.4-2.8x of each other over the zoo); the larger keeps a lucky small PyTorch error from
making the budget too tight. Measured, the budget is in the logits' own units and scales
with the network: a trained net with logits of 0.2, a random-weight ResNet-101 with logits
of 14 and 1.3e-4 relative fp32 error, and BN statistics from digits (near-zero variances
amplifying every rounding) each get the budget their own conditioning calls for. Max abs
over the logit vector, not a relative error: a bug moving small logits shows as well.

SLACK = 64, measured (benchmarks/parity/, 2026-12-05) as ratio = error / rounding:
  honest, worst: 2.3 (AlexNet, OpenVINO) over every zoo family at small resolution,
    ResNet-101/152, PreAct-ResNet-200, SqueezeNext-44, BN statistics from digits and a
    MobileNet trained on mnist5k, on an AMD EPYC (family 25 model 1, Zen 3; KVM, 2 vCPUs;
    SSE4.2, AVX, AVX2, FMA, F16C; no AVX-512), with float32 normals drawn for every element
    of every image; 2.2 (AlexNet, OpenVINO) with the draws as now (one per position of an
    image, shared by the batch) on an Intel Xeon (AVX-512 VNNI, AMX; smallest planted bug
    there 1.6e3); 2.6 (SqueezeNext-23, ONNX Runtime) with the earlier float64 draws,
    whose one realization put SqueezeNext-23's injected term 3.7x lower; 3.5 under qemu's
    Nehalem (SSE4.2 only) and SandyBridge (AVX, no FMA/AVX2) on the same ONNX files
    (float64 draws);
  planted bugs, smallest: 1.6e3 (BN eps 1e-5 for 1e-3 in PreAct-ResNet-200; 3.6e4 for a
    conv bias dropped, over every conv of a MobileNet, 6e4 for a padding off by one), and
    logits of another shape for a missing last layer.
SLACK sits near their geometric middle: ~20x headroom on either side, for kernels less
accurate than plain summation (Winograd) and for bugs smaller than these. The Zen 4
refusals this replaces stay far inside it: its OpenVINO was 1.86e-3 from PyTorch on
ResNet-101 (logits up to 14), where PyTorch fp32 and the injected rounding are ~1.9e-3
from float64 (tolerance ~0.12); the trained MobileNet's (4.66e-4 / 7.0e-4 from PyTorch,
PyTorch 3.3e-4 from float64) are within 3.2x of PyTorch's own error.

A reference that cannot run in float64 (a foreign ONNX file's: ONNX Runtime on the original
graph, fp32 whatever its input) measures no rounding of its own; its budget keeps a floor,
FOREIGN_FLOOR of its logits' scale (at least 1), as before. Logits of another shape than the
reference's fail outright.

The verdict (`judge`) and the consumers need no torch: benchmarks/parity/isa.py applies
them under an emulated CPU to references computed natively.

Latency: the bench harness times the variants in alternating blocks of runs, never
interleaved run by run (ONNX Runtime's worker threads spin after each run and would tax the
other session).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import onnx

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import Runner
from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
from edgecnn.runtime.ov_runner import OvOptions, OvRunner

if TYPE_CHECKING:  # torch only where PyTorch runs: the verdict and the runners need none
    from torch import nn

SLACK = 64.0  # tolerance = SLACK x the measured fp32 rounding of the logits (module doc)
FOREIGN_FLOOR = 1e-4  # of max(1, |logits|), when the reference has no float64 run
EPS32 = float(np.finfo(np.float32).eps)

Graph = Union[onnx.ModelProto, bytes, str, "os.PathLike[str]"]  # in memory, or a file


def _source(model: Graph) -> bytes | str | os.PathLike[str]:
    return model.SerializeToString() if isinstance(model, onnx.ModelProto) else model


def ort_runner(model: Graph, threads: int = 1, *, spinning: bool = True,
               quiet: bool = False, qdq_fusion: bool = True) -> OrtRunner:
    """An active ONNX Runtime CPU runner: the runtime's own, as a device app gets it.
    `threads` 0 is ONNX Runtime's default (one per physical core); `spinning` False parks
    idle workers at once (work sharing busy cores); `quiet` silences ONNX Runtime's own
    error log (probes that may fail); `qdq_fusion` False runs Q/DQ pairs as their own ops
    (exact int8 arithmetic where this CPU's fused kernels clip: OrtOptions.qdq_fusion)."""
    runner = OrtRunner(_source(model), "cpu", OrtOptions(threads=threads, spinning=spinning,
                                                         quiet=quiet, qdq_fusion=qdq_fusion))
    runner.activate()
    return runner


def ort_session(model: Graph, threads: int = 1, *, spinning: bool = True,
                qdq_fusion: bool = True) -> Any:
    """The InferenceSession inside `ort_runner`, for code that needs ONNX Runtime's own API
    (several outputs, `get_inputs`): the quantizer's and the guard's evaluation."""
    return ort_runner(model, threads, spinning=spinning, qdq_fusion=qdq_fusion).session


def openvino_runner(model: Graph, threads: int = 1) -> OvRunner:
    """An active OpenVINO CPU runner in f32 (its CPU default may be bf16)."""
    runner = OvRunner(_source(model), "cpu", OvOptions(precision="f32", threads=threads))
    runner.activate()
    return runner


def runner_logits(runner: Runner, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """A runner's outputs over the images `x`, in batches (its own when the model fixes it)."""
    step = runner.input.shape[0] or batch
    return np.concatenate([runner.infer(x[i:i + step]) for i in range(0, len(x), step)])


def parity_runners(model: Graph) -> tuple[Runner, ...]:
    """The consumers `check_parity` compares against PyTorch, one thread each (the graph
    serialized once for both: VGG's is 0.5 GB): ONNX Runtime, and OpenVINO when installed."""
    from edgecnn.runtime.loader import installed

    source = _source(model)
    ort = ort_runner(source)
    return (ort, openvino_runner(source)) if installed("openvino") else (ort,)


@dataclass
class ParityResult:
    inputs: str  # "random" or the data set the real images came from
    images: int
    onnxruntime_max_abs: float  # vs PyTorch fp32, as reported (max abs, logit units)
    openvino_max_abs: float | None  # None: OpenVINO is not installed, so not checked
    logits_max_abs: float  # the scale of what was compared
    torch_fp32_error: float = 0.0  # PyTorch fp32 vs float64, max abs
    injected_error: float = 0.0  # float64 with fp32-sized rounding injected vs float64
    onnxruntime_error: float = 0.0  # vs float64: what is judged
    openvino_error: float | None = 0.0
    float64: bool = True  # False: the reference could not run in float64 (foreign file)
    shape_mismatch: str = ""  # "ONNX Runtime (4, 256) vs (4, 10)" when the shapes differ

    @property
    def rounding(self) -> float:
        """The fp32 rounding of these logits, as measured on these images (module doc)."""
        return max(self.torch_fp32_error, self.injected_error)

    @property
    def tolerance(self) -> float:
        budget = SLACK * self.rounding
        if not self.float64:
            budget = max(budget, FOREIGN_FLOOR * max(1.0, self.logits_max_abs))
        return budget

    @property
    def ratio(self) -> float:
        """The worse runtime's error over the measured rounding (inf when nothing rounds and
        a runtime differs): the margin figure, passes iff <= SLACK for float64 references."""
        worst = self.worst_error
        return worst / self.rounding if self.rounding > 0 else (np.inf if worst > 0 else 0.0)

    @property
    def ok(self) -> bool:
        if self.shape_mismatch:
            return False
        # NaN anywhere compares false: a runtime producing NaN fails
        return bool(self.worst_error <= self.tolerance)

    @property
    def worst_error(self) -> float:
        """The larger error against float64 of the runtimes that ran (NaN propagates)."""
        errors = [e for e in (self.onnxruntime_error, self.openvino_error) if e is not None]
        return float(np.max(errors))


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0


def judge(inputs: str, expected: np.ndarray, exact: np.ndarray, injected: np.ndarray,
          got: dict[str, np.ndarray], float64: bool = True) -> ParityResult:
    """The verdict from logits alone (no torch: benchmarks/parity/isa.py applies it to
    outputs computed under an emulated CPU). `expected` PyTorch fp32, `exact` the float64
    run, `injected` the float64 run with rounding injected, `got` {"onnxruntime": ...,
    "openvino": ...} (no "openvino": not installed, not checked)."""
    ov = got.get("openvino")
    bad = [f"{name} {tuple(y.shape)} vs {tuple(exact.shape)}" for name, y in
           (("ONNX Runtime", got["onnxruntime"]), ("OpenVINO", ov))
           if y is not None and y.shape != exact.shape]
    if bad:
        nan = float("nan")
        return ParityResult(inputs, len(exact), nan, None if ov is None else nan,
                            float(np.abs(exact).max()), shape_mismatch=", ".join(bad))
    return ParityResult(
        inputs=inputs, images=len(exact),
        onnxruntime_max_abs=_max_abs(got["onnxruntime"], expected),
        openvino_max_abs=None if ov is None else _max_abs(ov, expected),
        logits_max_abs=float(np.abs(exact).max()),
        torch_fp32_error=_max_abs(expected, exact) if float64 else 0.0,
        injected_error=_max_abs(injected, exact) if float64 else 0.0,
        onnxruntime_error=_max_abs(got["onnxruntime"], exact),
        openvino_error=None if ov is None else _max_abs(ov, exact),
        float64=float64)


def references(model: nn.Module, x: np.ndarray, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """PyTorch's fp32 logits, the float64 ones, the float64 ones with fp32-sized rounding
    injected at every leaf module's output, and whether the float64 run was float64 (a
    foreign file's reference stays fp32). Three forward passes over `x`: a few images."""
    import torch

    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
        exact_model = copy.deepcopy(model).double()
        x64 = torch.from_numpy(x).double()
        exact = exact_model(x64).numpy()
        float64 = exact.dtype == np.float64
        if not float64:
            return expected, exact, exact, False
        noise = torch.Generator().manual_seed(seed)

        def round_off(module: torch.nn.Module, args: Any, out: Any) -> Any:
            if isinstance(out, torch.Tensor) and out.dtype == torch.float64:
                # out + out * eps32 * N(0, 1), one draw per element of an image, the same
                # for every image of the batch: each image sees independent normals, at a
                # batch's fraction of the cost (8 images at 224 px: 0.44 s -> 0.08 s). The
                # draws are float32 (scaled by eps32, their own rounding is moot).
                draw = torch.randn((1, *out.shape[1:]) if out.dim() else (),
                                   generator=noise, dtype=torch.float32)
                return torch.addcmul(out, out, draw.double(), value=EPS32)
            return None

        hooks = [m.register_forward_hook(round_off) for m in exact_model.modules()
                 if next(m.children(), None) is None]
        try:
            injected = exact_model(x64).numpy()
        finally:
            for h in hooks:
                h.remove()
    return expected, exact, injected, True


def check_parity(model: nn.Module, proto: Graph, x: np.ndarray, inputs: str,
                 consumers: tuple[Runner, ...] | None = None) -> ParityResult:
    """ORT's and (when installed) OpenVINO's logits over the batch `x` (image by image)
    judged against the float64 run of `model` (module doc); `consumers`:
    `parity_runners(proto)` when already made."""
    expected, exact, injected, float64 = references(model, x)
    got = consumer_logits(consumers or parity_runners(proto), x)
    return judge(inputs, expected, exact, injected, got, float64)


def consumer_logits(consumers: tuple[Runner, ...], x: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Each consumer's logits over `x`, image by image (batch 1, as a device runs them)."""
    return {runner.name: np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))])
            for runner in consumers}


def require_parity(results: list[ParityResult]) -> None:
    for r in results:
        if r.ok:
            continue
        if r.shape_mismatch:
            raise EdgeCNNError(f"parity check failed on {r.inputs} inputs: logits of another "
                               f"shape than PyTorch's ({r.shape_mismatch}); nothing was written")
        budget = (f"PyTorch fp32 by {r.torch_fp32_error:.2e}, tolerance {r.tolerance:.2g} = "
                  f"{SLACK:g}x the measured fp32 rounding" if r.float64
                  else f"tolerance {r.tolerance:.2g}")
        ov = "" if r.openvino_error is None else f", OpenVINO by {r.openvino_error:.2e}"
        raise EdgeCNNError(
            f"parity check failed on {r.inputs} inputs: ONNX Runtime differs from "
            f"{'float64 PyTorch' if r.float64 else 'the reference'} by "
            f"{r.onnxruntime_error:.2e}{ov} (max abs, logits up to {r.logits_max_abs:.2g}; "
            f"{budget}); nothing was written")


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
    plan = TimingPlan(warmup=3, iters=blocks * runs)  # pauses only after spinning runners
    records = run_group(cases, plan, peak_gmacs=None, rounds=blocks)
    if len(records) != len(cases):
        raise EdgeCNNError("latency comparison interrupted")
    return {r.model: r.latency_ms_p50 for r in records}
