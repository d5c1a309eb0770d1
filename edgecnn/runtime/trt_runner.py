"""TensorRT 10: build an engine from the ONNX file once per GPU, cache it, run it on a stream.

Building: the ONNX parser fills a network (TensorRT 10 networks are always explicit-batch);
fp16 is a builder flag; int8 means explicit quantization: the export stage's Q/DQ graph
carries the scales, so the INT8 flag is set and no calibrator is used (int8 is switched on by
itself when the graph has QuantizeLinear/DequantizeLinear nodes, and refused when it has
none). An int8 engine is built with FP16 allowed as well unless fp16=False says otherwise:
the layers left in float (the guard's float stem, softmax, pooling) then run in fp16, which
is how int8 is run on Jetson. A dynamic batch dimension gets one optimization profile
(min/opt/max batch).

Caching: building takes seconds to minutes, so engines are kept under a cache directory
keyed by the GPU's name, its compute capability, the TensorRT version, the ONNX file's
sha256 and the build settings, the builder flags (FP16, INT8) among them. An engine built on another GPU or by another TensorRT is
never looked up (its key differs), so it is rebuilt instead of failing to deserialize; a
damaged cache file fails its recorded sha256 and is rebuilt too. Timing caches (per GPU and
TensorRT version) make rebuilds of other models faster.

Running: device buffers sized for the largest batch, `execute_async_v3` on a CUDA stream,
host<->device copies on the same stream. The CUDA calls go through NVIDIA's cuda-python
(`cuda.bindings.runtime`, the binding TensorRT 10's own samples use; wheels exist for
x86-64 and for Jetson's aarch64, no compiler needed, unlike PyCUDA) - not torch.

No test in the suite needs TensorRT or a GPU (CI runs on CPU machines without TensorRT).
Tested offline (tests/test_trt_offline.py): importing this module without
TensorRT, the "not installed" messages, option checks, device checks, int8-without-Q/DQ
refusal, profile shapes, cache keys, the engine cache's atomic store/verified load, and the
timing-cache paths. Not run: engine building, deserialization and execution (activate_impl
and infer_impl below), on a GPU or a Jetson. deploy/jetson/ has the scripts to run it there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_write, write_errors
from edgecnn.host import cache_root
from edgecnn.runtime.base import OnnxRunner, RunnerOptions, check_type
from edgecnn.runtime.ort_runner import parse_cuda_device

log = logging.getLogger("edgecnn.runtime")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TrtOptions(RunnerOptions):
    # Allow fp16 kernels (inputs and outputs stay float32); None: on for int8 (Q/DQ) graphs
    # and for an artifact's fp16 file, off for fp32 ones.
    fp16: bool | None = None
    int8: bool | None = None  # None: on exactly when the graph has Q/DQ nodes
    # The optimization profile of a dynamic batch: kernels are tuned for opt_batch and
    # valid from min_batch to max_batch. A static batch ignores these.
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    workspace_mb: int = 1024  # scratch memory tactics may use while building
    optimization_level: int = 3  # builder_optimization_level 0..5: build time vs speed
    cache_dir: str | None = None  # engines and timing caches; None: default_cache_dir()

    def __post_init__(self) -> None:
        owner = "tensorrt"
        check_type(owner, "fp16", self.fp16, (bool, type(None)))
        check_type(owner, "int8", self.int8, (bool, type(None)))
        for name in ("min_batch", "opt_batch", "max_batch", "workspace_mb"):
            check_type(owner, name, getattr(self, name), int, minimum=1)
        check_type(owner, "optimization_level", self.optimization_level, int,
                   choices=(0, 1, 2, 3, 4, 5))
        check_type(owner, "cache_dir", self.cache_dir, (str, type(None)))
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise EdgeCNNError("tensorrt options need min_batch <= opt_batch <= max_batch, got "
                               f"{self.min_batch}, {self.opt_batch}, {self.max_batch}")


@dataclass(frozen=True)
class GpuInfo:
    name: str  # e.g. "NVIDIA H100 80GB HBM3", "Orin"
    compute_capability: str  # e.g. "9.0", "8.7"


def default_cache_dir() -> Path:
    return cache_root() / "tensorrt"


def profile_shapes(shape: tuple[int | None, ...], options: TrtOptions) -> tuple[Shape, Shape,
                                                                                 Shape] | None:
    """(min, opt, max) input shapes for a dynamic batch; None for a fully static input.
    Only the batch dimension may be dynamic: an image model has a fixed resolution."""
    if None not in shape:
        return None
    if not shape or any(d is None for d in shape[1:]):
        dims = "x".join("?" if d is None else str(d) for d in shape)
        raise EdgeCNNError(f"tensorrt needs fixed input dimensions except the batch, got {dims}")
    rest = tuple(int(d) for d in shape[1:])  # type: ignore[arg-type]
    return ((options.min_batch, *rest), (options.opt_batch, *rest), (options.max_batch, *rest))


# The TensorRT each TensorRT recipe (export/<name>.yaml) is made for: its ONNX parser's
# opsets and Q/DQ rules. An artifact records its recipe in its metadata.
RECIPE_TENSORRT = {"tensorrt": (10, 0), "jetson-orin": (10, 3), "jetson-nano": (8, 2)}


def check_recipe_version(trt_version: str, target: str | None) -> None:
    """One line when this TensorRT is older than the artifact's recipe needs."""
    need = RECIPE_TENSORRT.get(target or "")
    found = tuple(int(v) for v in re.findall(r"\d+", trt_version)[:2])
    if need and found < need:
        raise EdgeCNNError(f"tensorrt {trt_version} is older than the {need[0]}.{need[1]} the "
                           f"{target} recipe this artifact was exported with needs")


def builder_flags(int8: bool, options: TrtOptions, fp16_file: bool = False
                  ) -> tuple[str, ...]:
    """The BuilderFlag names an engine is built with, e.g. ("FP16", "INT8")."""
    fp16 = (int8 or fp16_file) if options.fp16 is None else options.fp16
    return tuple(name for name, on in (("FP16", fp16), ("INT8", int8)) if on)


def engine_key(gpu: GpuInfo, trt_version: str, onnx_sha256: str, flags: tuple[str, ...],
               options: TrtOptions, shapes: tuple[Shape, Shape, Shape] | None) -> str:
    """A file-name-safe key that changes with anything that makes an engine invalid or
    different: GPU, compute capability, TensorRT version, the model bytes, builder flags
    and the other build settings."""
    settings = {"gpu": gpu.name, "cc": gpu.compute_capability, "trt": trt_version,
                "onnx": onnx_sha256, "flags": sorted(flags),
                "profile": shapes, "workspace_mb": options.workspace_mb,
                "level": options.optimization_level}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]
    gpu_slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu.name).strip("-").lower()[:40] or "gpu"
    return f"{gpu_slug}-sm{gpu.compute_capability.replace('.', '')}-trt{trt_version}-{digest}"


class EngineCache:
    """<dir>/<key>.engine plus <key>.json (what was built, and the engine's sha256)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def load(self, key: str) -> bytes | None:
        """The cached engine, or None when absent, unreadable or not what was recorded."""
        engine, record = self.dir / f"{key}.engine", self.dir / f"{key}.json"
        try:
            meta = json.loads(record.read_text())
            data = engine.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get(
                "sha256") != hashlib.sha256(data).hexdigest():
            log.warning("tensorrt: cached engine %s is damaged; rebuilding", engine.name)
            return None
        return data

    def store(self, key: str, data: bytes, about: dict[str, Any]) -> Path:
        """Write atomically (fileio's writer): a crash never leaves half an engine."""
        with write_errors(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        record = dict(about, key=key, sha256=hashlib.sha256(data).hexdigest())
        atomic_write(self.dir / f"{key}.engine", data)
        atomic_write(self.dir / f"{key}.json", json.dumps(record, indent=2))
        return self.dir / f"{key}.engine"

    def timing_cache_path(self, gpu: GpuInfo, trt_version: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu.name).strip("-").lower()[:40] or "gpu"
        return self.dir / f"timing-{slug}-sm{gpu.compute_capability.replace('.', '')}-" \
                          f"trt{trt_version}.cache"


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise EdgeCNNError("tensorrt is not installed: pip install tensorrt cuda-python (on "
                           "Jetson: JetPack's python3-libnvinfer, see deploy/jetson)") from None
    major = int(str(tensorrt.__version__).split(".")[0])
    if major < 10:
        raise EdgeCNNError(f"tensorrt {tensorrt.__version__} is too old: this runner uses the "
                           "TensorRT 10 API (on TensorRT 8, use onnxruntime's TensorRT provider)")
    return tensorrt


def import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise EdgeCNNError("cuda-python is not installed (the tensorrt runner needs it for "
                               "CUDA streams and copies): pip install cuda-python") from None
    return cudart


def _cuda(cudart: Any, result: Any) -> Any:
    """cuda-python returns (error, value...): raise on an error, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1]
        raise EdgeCNNError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return rest[0] if len(rest) == 1 else rest


class TrtRunner(OnnxRunner):
    name: ClassVar[str] = "tensorrt"
    options_type = TrtOptions
    options: TrtOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.path is None:  # its engine cache is keyed by the file's hash
            raise EdgeCNNError("tensorrt builds engines from a file: pass the ONNX file's path")
        if self.device == "cpu":
            raise EdgeCNNError("tensorrt runs on NVIDIA GPUs: use device 'cuda' (or another "
                               "runtime for the CPU)")
        self.device_id = parse_cuda_device(self.device, self.name)
        qdq = self.info.has_qdq
        if self.options.int8 and not qdq:
            raise EdgeCNNError(f"{self.path.name} has no Q/DQ nodes: tensorrt int8 here is "
                               "explicit quantization; export with --int8 --target tensorrt")
        self.int8 = qdq if self.options.int8 is None else self.options.int8
        if qdq and not self.int8:
            raise EdgeCNNError(f"{self.path.name} is a Q/DQ (int8) graph; int8=False cannot "
                               "build it in float")
        props = self.info.metadata_props
        self.flags = builder_flags(self.int8, self.options,
                                   props.get("edgecnn.precision") == "fp16")
        self.target = props.get("edgecnn.extra.target")
        self.shapes = profile_shapes(self.input.shape, self.options)
        self.cache = EngineCache(self.options.cache_dir or default_cache_dir())
        self._trt: Any = None
        self._cudart: Any = None

    # -- not run by the suite: needs TensorRT and an NVIDIA GPU ------------------------------
    def activate_impl(self) -> None:
        trt, cudart = import_tensorrt(), import_cudart()
        check_recipe_version(trt.__version__, self.target)
        self._trt, self._cudart = trt, cudart
        _cuda(cudart, cudart.cudaSetDevice(self.device_id))
        props = _cuda(cudart, cudart.cudaGetDeviceProperties(self.device_id))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        self.gpu = GpuInfo(name.rstrip("\x00"), f"{props.major}.{props.minor}")
        logger = trt.Logger(trt.Logger.WARNING)
        key = engine_key(self.gpu, trt.__version__, self.info.sha256(), self.flags,
                         self.options, self.shapes)
        data = self.cache.load(key)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(data) if data is not None else None
        if engine is None:
            data = self._build(trt, logger)
            self.cache.store(key, data, {"onnx": str(self.path), "gpu": asdict(self.gpu),
                                         "tensorrt": trt.__version__, "flags": list(self.flags),
                                         "options": asdict(self.options)})
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise EdgeCNNError("tensorrt built an engine it cannot load")
        self.engine, self.context = engine, engine.create_execution_context()
        self.stream = _cuda(cudart, cudart.cudaStreamCreate())
        max_batch = self.shapes[2][0] if self.shapes else self.input.shape[0]
        in_shape = (max_batch, *self.input.shape[1:])
        self.context.set_input_shape(self.input.name, in_shape)
        out_shape = tuple(self.context.get_tensor_shape(self.output_name))
        self.out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        self.d_in = _cuda(cudart, cudart.cudaMalloc(
            int(np.prod(in_shape)) * np.dtype(self.input.dtype).itemsize))
        self.d_out = _cuda(cudart, cudart.cudaMalloc(
            int(np.prod(out_shape)) * self.out_dtype.itemsize))
        self.context.set_tensor_address(self.input.name, int(self.d_in))
        self.context.set_tensor_address(self.output_name, int(self.d_out))
        # Other outputs (if any) still need an address: give each its own buffer.
        self.extra = []
        for i in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(i)
            if tensor not in (self.input.name, self.output_name):
                size = int(np.prod(self.context.get_tensor_shape(tensor))) * 8
                ptr = _cuda(cudart, cudart.cudaMalloc(size))
                self.extra.append(ptr)
                self.context.set_tensor_address(tensor, int(ptr))

    def _build(self, trt: Any, logger: Any) -> bytes:
        log.warning("tensorrt: building an engine for %s on %s (first run here; this takes "
                    "a while and is cached in %s)", self.path.name, self.gpu.name, self.cache.dir)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self.path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EdgeCNNError(f"tensorrt cannot parse {self.path.name}: "
                               f"{errors[0] if errors else 'unknown error'}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     self.options.workspace_mb << 20)
        config.builder_optimization_level = self.options.optimization_level
        for flag in self.flags:  # INT8: the scales come from the Q/DQ nodes
            config.set_flag(getattr(trt.BuilderFlag, flag))
        if self.shapes:
            profile = builder.create_optimization_profile()
            profile.set_shape(self.input.name, *self.shapes)
            config.add_optimization_profile(profile)
        timing_path = self.cache.timing_cache_path(self.gpu, trt.__version__)
        timing = config.create_timing_cache(timing_path.read_bytes()
                                            if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgeCNNError(f"tensorrt could not build an engine for {self.path.name} "
                               "(see the TensorRT log above)")
        with write_errors(self.cache.dir):
            self.cache.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
        return bytes(memoryview(serialized))

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        if self.shapes and not self.shapes[0][0] <= batch.shape[0] <= self.shapes[2][0]:
            raise EdgeCNNError(f"tensorrt engine takes batches of {self.shapes[0][0]} to "
                               f"{self.shapes[2][0]}, got {batch.shape[0]} (set max_batch)")
        self.context.set_input_shape(self.input.name, batch.shape)
        out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), self.out_dtype)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _cuda(cudart, cudart.cudaMemcpyAsync(self.d_in, batch.ctypes.data, batch.nbytes, h2d,
                                             self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise EdgeCNNError("tensorrt execution failed (see the TensorRT log)")
        _cuda(cudart, cudart.cudaMemcpyAsync(out.ctypes.data, self.d_out, out.nbytes, d2h,
                                             self.stream))
        _cuda(cudart, cudart.cudaStreamSynchronize(self.stream))
        return out.astype(np.float32, copy=False)

    def deactivate_impl(self) -> None:
        cudart = self._cudart
        for ptr in [self.d_in, self.d_out, *self.extra]:
            cudart.cudaFree(ptr)
        cudart.cudaStreamDestroy(self.stream)
        self.context = self.engine = None

    def describe(self) -> str:
        version = self._trt.__version__ if self._trt is not None else "?"
        modes = "+".join(flag.lower() for flag in self.flags)
        return f"tensorrt {version} ({self.device}{', ' + modes if modes else ''})"
