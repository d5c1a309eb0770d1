"""The one interface every runner implements (after Polygraphy's backends).

    with OrtRunner("model.onnx") as runner:      # activate(): build the session/engine
        logits = runner.infer(batch)            # (B, C, H, W) float32 -> (B, classes)
    # deactivate(): release it

`infer` checks the batch against the model's input (rank, dtype, static dimensions) before
any native code sees it, so a wrong batch is one EdgeCNNError, never a crash or a message
from deep inside a runtime. Subclasses implement `activate_impl`, `infer_impl` and
`deactivate_impl`; ONNX-based runners derive from `OnnxRunner`, which reads and checks the
file first (see onnx_file.py). The PyTorch runner (edgecnn/bench/torch_runner.py)
implements the same interface outside this torch-free package.
"""

from __future__ import annotations

import abc
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Union

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.onnx_file import OnnxInfo, TensorInfo, parse_onnx, read_onnx


@dataclass(frozen=True)
class TensorSpec:
    """What a runner accepts: a name, a dtype and a shape (None = any size)."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int | None, ...]

    @classmethod
    def from_info(cls, info: TensorInfo, source: str) -> TensorSpec:
        if info.shape is None:
            raise EdgeCNNError(f"{source}: input {info.name!r} declares no shape")
        if info.elem_type not in ("float32", "float16"):
            raise EdgeCNNError(f"{source}: input {info.name!r} is {info.elem_type}; "
                               "image models take float input")
        return cls(info.name, info.elem_type, info.shape)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_np_dtype", np.dtype(self.dtype))  # once, not per call

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    def check(self, batch: Any) -> np.ndarray:
        """The batch as a C-contiguous array, or an EdgeCNNError saying what is wrong."""
        if not isinstance(batch, np.ndarray):
            raise EdgeCNNError(f"expected a numpy array for input {self.name!r}, got "
                               f"{type(batch).__name__}")
        if batch.dtype != self._np_dtype:  # type: ignore[attr-defined]
            raise EdgeCNNError(f"input {self.name!r} must be {self.dtype}, got {batch.dtype} "
                               f"(convert with .astype(np.{self.dtype}))")
        shape = batch.shape
        if len(shape) != len(self.shape) or any(
                want is not None and have != want for have, want in zip(shape, self.shape)):
            expected = "x".join("N" if d is None else str(d) for d in self.shape)
            raise EdgeCNNError(f"input {self.name!r} must have shape {expected}, got "
                               f"{'x'.join(map(str, shape))}")
        if batch.size == 0:
            raise EdgeCNNError(f"input {self.name!r} is empty (shape "
                               f"{'x'.join(map(str, shape))})")
        return np.ascontiguousarray(batch)


@dataclass(frozen=True)
class RunnerOptions:
    """Base of each runner's typed options: unknown names are one clear error."""

    @classmethod
    def from_kwargs(cls, runtime: str, kwargs: dict[str, Any]) -> RunnerOptions:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise EdgeCNNError(f"unknown option {unknown[0]!r} for {runtime}; its options are "
                               f"{', '.join(names) or 'none'}")
        return cls(**kwargs)


def check_type(owner: str, name: str, value: Any, kind: type | tuple[type, ...],
               choices: tuple[Any, ...] = (), minimum: int | None = None) -> None:
    """One-line errors for option values (bool is not an int here)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise EdgeCNNError(f"{owner} option {name} must be {'/'.join(k.__name__ for k in kinds)}, "
                           f"got {value!r}")
    if choices and value not in choices:
        raise EdgeCNNError(f"{owner} option {name} must be one of {', '.join(map(str, choices))}, "
                           f"got {value!r}")
    if minimum is not None and value < minimum:
        raise EdgeCNNError(f"{owner} option {name} must be at least {minimum}, got {value!r}")


class Runner(abc.ABC):
    """activate -> infer ... -> deactivate; also a context manager."""

    name: ClassVar[str]  # "onnxruntime", "openvino", "tensorrt", "torch"

    @property
    def spins_after_run(self) -> bool:
        """Whether idle worker threads keep spinning after a run, taxing whatever runs next
        on the cores (the timing harness pauses after such a runner's block). Measured on a
        2-core AMD EPYC, MobileNet 0.5 at 224, 2 threads: ONNX Runtime ~60 ms of a core,
        OpenVINO none, PyTorch under 10 ms."""
        return False

    def __init__(self, input_spec: TensorSpec, device: str) -> None:
        self.input = input_spec
        self.device = device
        self.is_active = False
        self._last_time: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.is_active = False
            self.deactivate_impl()

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # -- running -----------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """One forward pass: (B, C, H, W) -> (B, ...) as a float32 numpy array."""
        if not self.is_active:
            raise EdgeCNNError(f"{self.name} runner is not active: use `with runner:` or "
                               "call activate() first")
        batch = self.input.check(batch)
        start = time.perf_counter()
        out = self.infer_impl(batch)
        self._last_time = time.perf_counter() - start
        return out

    def last_inference_time(self) -> float | None:
        """Seconds spent in the last infer_impl (copies in and out included)."""
        return self._last_time

    def describe(self) -> str:
        """One line: runtime, version and where it runs."""
        return f"{self.name} on {self.device}"

    def __repr__(self) -> str:
        state = "active" if self.is_active else "inactive"
        return f"<{type(self).__name__} {self.describe()} ({state})>"

    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    @abc.abstractmethod
    def infer_impl(self, batch: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def deactivate_impl(self) -> None: ...


ModelSource = Union[str, "os.PathLike[str]", bytes]  # a file, or a serialized ModelProto


class OnnxRunner(Runner):
    """A runner over an ONNX model with one input (the image batch) and one output used.

    `model` is a file path or the model's bytes (`proto.SerializeToString()`): export checks
    its graphs in memory with the same runners a device app uses on files."""

    options_type: ClassVar[type[RunnerOptions]]

    def __init__(self, model: ModelSource, device: str = "cpu",
                 options: RunnerOptions | None = None, *, info: OnnxInfo | None = None) -> None:
        if isinstance(model, (bytes, bytearray)):
            self.path: Path | None = None
            self.model_bytes: bytes | None = bytes(model)
            self.info = info if info is not None else parse_onnx(self.model_bytes)
        else:
            self.path, self.model_bytes = Path(model), None
            self.info = info if info is not None else read_onnx(self.path)
        source = self.info.source
        if len(self.info.inputs) != 1 or not self.info.outputs:
            raise EdgeCNNError(f"{source}: expected one input and at least one output, "
                               f"found {len(self.info.inputs)} and {len(self.info.outputs)}")
        spec = TensorSpec.from_info(self.info.inputs[0], source)
        if len(spec.shape) != 4:
            raise EdgeCNNError(f"{source}: input {spec.name!r} has {len(spec.shape)} "
                               "dimensions; an image model takes (N, C, H, W) or (N, H, W, C)")
        super().__init__(spec, device)
        self.output_name = self.info.outputs[0].name
        self.model_name = self.path.name if self.path is not None else "model bytes"
        self.options = options if options is not None else self.options_type()
        if not isinstance(self.options, self.options_type):
            raise EdgeCNNError(f"{self.name} takes {self.options_type.__name__}, got "
                               f"{type(self.options).__name__}")


def native_error(runtime: str, what: str, exc: BaseException) -> EdgeCNNError:
    """A runtime's own exception as our one-line error (its first line is the useful one)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0] if lines else type(exc).__name__
    return EdgeCNNError(f"{runtime} could not {what}: {detail[:300]}")
