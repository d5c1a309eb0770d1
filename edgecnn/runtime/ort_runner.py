"""ONNX Runtime: the CPU, CUDA and TensorRT execution providers behind one runner.

The provider follows the device (cpu -> CPUExecutionProvider, cuda[:N] -> CUDA) unless
`provider="tensorrt"` asks for ONNX Runtime's TensorRT provider. ONNX Runtime quietly falls
back to the CPU when a GPU provider fails to load (missing CUDA/cuDNN libraries); we check
the session's providers afterwards and refuse instead, so a "GPU" figure is never a CPU one.
The model is a file or its bytes (export's checks run graphs held in memory).

On a GPU the input and output go through IO binding: the output stays bound to a device
buffer between runs instead of being reallocated, and copies are explicit. The same path
runs on the CPU (io_binding=True), which is how it is tested on a machine without a GPU.
The test suite runs the CPU provider, with and without IO binding; the CUDA and TensorRT
providers need the onnxruntime-gpu package and an NVIDIA GPU, which CI does not have.

Profiling (profile_prefix, end_profiling) and the optimized graph (optimized_model_path) are
options here, so that code reading ONNX Runtime's per-node kernel times makes its session
the way every other caller does: edgecnn makes no InferenceSession outside the runtime.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import OnnxRunner, RunnerOptions, check_type, native_error

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}
OPT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class OrtOptions(RunnerOptions):
    # None: CPU for device "cpu", CUDA for "cuda[:N]"; "tensorrt" needs a cuda device.
    provider: str | None = None
    # Intra-op pool (the threads that split one convolution); 0 = ONNX Runtime's default,
    # one per physical core. Set it when timing so every runtime gets the same cores.
    threads: int = 0
    # Inter-op pool, only used when independent branches may run in parallel; 0 = default.
    inter_op_threads: int = 0
    # Graph rewrites (constant folding, Conv+BN+ReLU fusion...); "all" is what deployment
    # wants, "disable" is for checking a rewrite is not what changed a result.
    graph_optimization: str = "all"
    # False: Q/DQ pairs run as their own ops around float kernels (session.disable_quant_qdq),
    # int8 arithmetic computed exactly as a CPU that accumulates in int32 does (Arm, VNNI),
    # where this CPU's fused int8 kernels would clip (edgecnn.host.int8_saturates).
    qdq_fusion: bool = True
    # None: on for GPU providers, off on the CPU (where it only adds bookkeeping).
    io_binding: bool | None = None
    # Worker threads spin after a run to cut the next run's latency; a device app sharing
    # its cores with a camera loop should turn that off.
    spinning: bool = True
    # True: they spin within a run but stop as it returns (session.force_spinning_stop), so
    # the next session timed needs no pause for them: how fit times cut-out layers.
    park_after_run: bool = False
    # TensorRT provider only: fp16 kernels and where its engines and timing cache go.
    trt_fp16: bool = False
    trt_cache_dir: str | None = None
    # ONNX Runtime logs errors to stderr itself (in C++); a probe that may fail (can this
    # graph take another batch size?) turns that off and reads the exception instead.
    quiet: bool = False
    # ONNX Runtime's profiler: every node's kernel time of every run, written as JSON trace
    # events to "<profile_prefix>_<timestamp>.json" when end_profiling() is called (or the
    # session is released). None: off (it costs time on every run).
    profile_prefix: str | None = None
    # Save the graph as ONNX Runtime optimized it (fused, NCHWc-reordered) to this file when
    # the session is built: the node names a profile speaks of. None: not saved.
    optimized_model_path: str | None = None

    def __post_init__(self) -> None:
        owner = "onnxruntime"
        check_type(owner, "provider", self.provider, (str, type(None)),
                   choices=(None, *PROVIDERS))
        check_type(owner, "threads", self.threads, int, minimum=0)
        check_type(owner, "inter_op_threads", self.inter_op_threads, int, minimum=0)
        check_type(owner, "graph_optimization", self.graph_optimization, str,
                   choices=OPT_LEVELS)
        check_type(owner, "io_binding", self.io_binding, (bool, type(None)))
        check_type(owner, "spinning", self.spinning, bool)
        check_type(owner, "park_after_run", self.park_after_run, bool)
        check_type(owner, "qdq_fusion", self.qdq_fusion, bool)
        check_type(owner, "trt_fp16", self.trt_fp16, bool)
        check_type(owner, "trt_cache_dir", self.trt_cache_dir, (str, type(None)))
        check_type(owner, "quiet", self.quiet, bool)
        check_type(owner, "profile_prefix", self.profile_prefix, (str, type(None)))
        check_type(owner, "optimized_model_path", self.optimized_model_path, (str, type(None)))


def parse_cuda_device(device: str, runtime: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1; anything else is an error."""
    name, _, index = device.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise EdgeCNNError(f"{runtime} device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return int(index or 0)


class OrtRunner(OnnxRunner):
    name: ClassVar[str] = "onnxruntime"
    options_type = OrtOptions
    options: OrtOptions

    @property
    def spins_after_run(self) -> bool:
        return (self.options.spinning and not self.options.park_after_run
                and self.options.threads != 1)  # 0: one per core

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        opts = self.options
        if self.device == "cpu":
            self.provider = opts.provider or "cpu"
            if self.provider != "cpu":
                raise EdgeCNNError(f"onnxruntime provider {self.provider!r} needs "
                                   "device='cuda'")
            self.device_id = 0
        else:
            self.device_id = parse_cuda_device(self.device, self.name)
            self.provider = opts.provider or "cuda"
            if self.provider == "cpu":
                raise EdgeCNNError("onnxruntime provider 'cpu' contradicts device "
                                   f"{self.device!r}")
        self.use_io_binding = opts.io_binding if opts.io_binding is not None else (
            self.provider != "cpu")
        self.session: Any = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        wanted = PROVIDERS[self.provider]
        if wanted not in ort.get_available_providers():
            raise EdgeCNNError(f"this onnxruntime has no {wanted}: pip install onnxruntime-gpu "
                               "(in place of onnxruntime)")
        so = ort.SessionOptions()
        # errors only (warnings go to stderr in C++, unformatted); quiet: fatal only
        so.log_severity_level = 4 if self.options.quiet else 3
        so.intra_op_num_threads = self.options.threads
        so.inter_op_num_threads = self.options.inter_op_threads
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.options.graph_optimization]
        if not self.options.spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.options.park_after_run:
            so.add_session_config_entry("session.force_spinning_stop", "1")
        if not self.options.qdq_fusion:
            so.add_session_config_entry("session.disable_quant_qdq", "1")
        if self.options.profile_prefix is not None:
            so.enable_profiling = True
            so.profile_file_prefix = self.options.profile_prefix
        if self.options.optimized_model_path is not None:
            so.optimized_model_filepath = self.options.optimized_model_path
        try:
            model = self.model_bytes if self.model_bytes is not None else str(self.path)
            self.session = ort.InferenceSession(model, sess_options=so,
                                                providers=self._providers())
        except Exception as exc:  # noqa: BLE001 - native errors of every kind, one line out
            raise native_error(self.name, f"load {self.model_name}", exc) from None
        active = self.session.get_providers()
        if active[0] != wanted:
            self.session = None
            raise EdgeCNNError(f"onnxruntime fell back to {active[0]} instead of {wanted} "
                               "(are the CUDA/cuDNN/TensorRT libraries installed?)")

    def _providers(self) -> list[Any]:
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        cuda = ("CUDAExecutionProvider", {"device_id": self.device_id})
        if self.provider == "cuda":
            return [cuda, "CPUExecutionProvider"]
        cache = self.options.trt_cache_dir or os.path.join(tempfile.gettempdir(),
                                                           "edgecnn-ort-trt")
        trt = ("TensorrtExecutionProvider", {
            "device_id": self.device_id, "trt_fp16_enable": self.options.trt_fp16,
            "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True, "trt_timing_cache_path": cache,
        })
        # Nodes TensorRT cannot take run on CUDA, then the CPU: ONNX Runtime's partitioning.
        return [trt, cuda, "CPUExecutionProvider"]

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        try:
            if not self.use_io_binding:
                return self.session.run([self.output_name], {self.input.name: batch})[0]
            return self._run_bound(batch)
        except Exception as exc:  # noqa: BLE001
            raise native_error(self.name, "run", exc) from None

    def _run_bound(self, batch: np.ndarray) -> np.ndarray:
        import onnxruntime as ort

        where = "cpu" if self.provider == "cpu" else "cuda"
        binding = self.session.io_binding()
        value = ort.OrtValue.ortvalue_from_numpy(batch, where, self.device_id)
        binding.bind_ortvalue_input(self.input.name, value)
        binding.bind_output(self.output_name, where, self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def end_profiling(self) -> Path:
        """Stop the profiler (options.profile_prefix) and return its JSON file: a list of
        trace events, each node's kernel time in the events of category "Node" named
        "<node>_kernel_time" (`dur` in microseconds), one per run of the node."""
        if self.options.profile_prefix is None:
            raise EdgeCNNError("onnxruntime runner was not profiling: set "
                               "OrtOptions(profile_prefix=...)")
        if self.session is None:
            raise EdgeCNNError("onnxruntime runner is not active: nothing was profiled")
        try:
            return Path(self.session.end_profiling())
        except Exception as exc:  # noqa: BLE001
            raise native_error(self.name, "end profiling", exc) from None

    def deactivate_impl(self) -> None:
        self.session = None

    def describe(self) -> str:
        import onnxruntime as ort

        where = PROVIDERS[self.provider] + ("" if self.device == "cpu" else f":{self.device_id}")
        return f"onnxruntime {ort.__version__} ({where})"
