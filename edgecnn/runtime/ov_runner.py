"""OpenVINO: Intel CPUs (and Intel GPUs/NPUs, whose device names pass through).

Precision: OpenVINO's CPU plugin computes in bf16 by default on CPUs that have it (AMX,
AVX512-BF16), which moves logits by ~1e-2; we ask for f32 unless told otherwise
(`precision=None` keeps the device's default, `"f16"`/`"bf16"` ask for those), so that
OpenVINO and ONNX Runtime agree to 1e-4 on the same artifact.

The file is read with the ONNX frontend by name (not by guessing from the suffix), after
onnx_file.py has checked it; the model is a file or its bytes. The test suite runs the CPU
device; Intel GPU and NPU devices are untested (CI has neither).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import OnnxRunner, RunnerOptions, check_type

PRECISIONS = ("f32", "f16", "bf16")
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


@dataclass(frozen=True)
class OvOptions(RunnerOptions):
    precision: str | None = "f32"  # INFERENCE_PRECISION_HINT; None = the device's default
    threads: int = 0  # INFERENCE_NUM_THREADS; 0 = OpenVINO's default (all cores)
    performance_hint: str = "LATENCY"  # LATENCY: one stream, batch-1 friendly
    num_streams: int = 0  # 0 = what the hint chooses
    cache_dir: str | None = None  # CACHE_DIR: keeps compiled blobs (slow compiles on GPU/NPU)
    perf_count: bool = False  # PERF_COUNT: per-layer times in `request.profiling_info`

    def __post_init__(self) -> None:
        owner = "openvino"
        check_type(owner, "precision", self.precision, (str, type(None)),
                   choices=(None, *PRECISIONS))
        check_type(owner, "threads", self.threads, int, minimum=0)
        check_type(owner, "performance_hint", self.performance_hint, str, choices=HINTS)
        check_type(owner, "num_streams", self.num_streams, int, minimum=0)
        check_type(owner, "cache_dir", self.cache_dir, (str, type(None)))
        check_type(owner, "perf_count", self.perf_count, bool)


def ov_device(device: str) -> str:
    """Our device names to OpenVINO's: cpu -> CPU, gpu -> GPU, npu -> NPU; 'GPU.1',
    'AUTO:GPU,CPU' and other OpenVINO names pass through unchanged."""
    if device.startswith("cuda"):
        raise EdgeCNNError("openvino does not run on CUDA devices: use device 'cpu' (or an "
                           "Intel 'GPU'/'NPU'), or runtime tensorrt/onnxruntime for NVIDIA GPUs")
    return device.upper() if device.lower() in ("cpu", "gpu", "npu", "auto") else device


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """The process's one `ov.Core`, as OpenVINO advises. It also keeps the CPU plugin alive:
    the plugin sets the calling thread's alternate signal stack when it is made and puts
    back the one it found when it is dropped. Cores made and dropped out of order
    (OpenVINO 2026.4.1) left it pointing at unmapped memory, and the next signal Python
    handled there (a Ctrl-C while export compressed its files) crashed with SIGSEGV."""
    import openvino as ov

    return ov.Core()


class OvRunner(OnnxRunner):
    name: ClassVar[str] = "openvino"
    options_type = OvOptions
    options: OvOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ov_device = ov_device(self.device)
        self.compiled: Any = None
        self.request: Any = None

    def activate_impl(self) -> None:
        from openvino.frontend import FrontEndManager

        family = self.ov_device.split(".")[0].split(":")[0]
        devices = core().available_devices
        if family not in ("AUTO", "MULTI", "HETERO") and not any(
                d.split(".")[0] == family for d in devices):
            raise EdgeCNNError(f"openvino has no device {self.ov_device!r}; available: "
                               f"{', '.join(devices)}")
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.options.performance_hint}
        if self.options.precision is not None:
            config["INFERENCE_PRECISION_HINT"] = self.options.precision
        if self.options.threads:
            config["INFERENCE_NUM_THREADS"] = self.options.threads
        if self.options.num_streams:
            config["NUM_STREAMS"] = self.options.num_streams
        if self.options.cache_dir:
            config["CACHE_DIR"] = self.options.cache_dir
        if self.options.perf_count:
            config["PERF_COUNT"] = True
        try:
            frontend = FrontEndManager().load_by_framework("onnx")
            source = io.BytesIO(self.model_bytes) if self.model_bytes is not None \
                else str(self.path)
            model = frontend.convert(frontend.load(source))
            self.compiled = core().compile_model(model, self.ov_device, config)
            self.request = self.compiled.create_infer_request()
        except Exception as exc:  # noqa: BLE001 - native errors of every kind, one line out
            raise _error(f"load {self.model_name}", exc) from None

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        try:
            # By name: the image input, wherever the file lists it among its inputs. Read in
            # place, not copied (as ONNX Runtime reads it): the call is synchronous.
            # MobileNet v1 0.5x int8 at 224, 1 thread, a 2-vCPU Xeon: 1.23 -> 1.18 ms.
            self.request.infer({self.input.name: batch}, share_inputs=True)
            # .data is a view of the request's buffer, overwritten by the next run: copy.
            return np.array(self.request.get_output_tensor(0).data, copy=True)
        except Exception as exc:  # noqa: BLE001
            raise _error("run", exc) from None

    def deactivate_impl(self) -> None:
        self.request = self.compiled = None

    def describe(self) -> str:
        import openvino as ov

        version = ov.get_version().split("-")[0]
        precision = self.options.precision or "device default"
        return f"openvino {version} ({self.ov_device}, {precision})"


def _error(what: str, exc: BaseException) -> EdgeCNNError:
    """OpenVINO's messages open with 'Exception from src/...:NN:' lines; keep the first
    line that says something."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception from")]
    detail = (useful or lines or [type(exc).__name__])[0]
    return EdgeCNNError(f"openvino could not {what}: {detail[:300]}")
