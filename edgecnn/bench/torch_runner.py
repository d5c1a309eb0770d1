"""PyTorch behind the runtime's Runner interface, for comparisons (benchmarks, parity).

Outside edgecnn.runtime on purpose: that package must never import torch. Three modes:
  eager       the module as it is
  compile     torch.compile (Inductor); the first call of each batch size compiles
  cudagraphs  CUDA only: each batch size is captured once into a CUDA graph (static input and
              output buffers) and replayed, which removes per-kernel launch overhead - what
              matters at batch 1 for small networks
`half=True` runs the model in fp16 on CUDA (inputs and outputs stay float32 numpy arrays).

    with TorchRunner(model, device="cuda", options=TorchOptions(mode="cudagraphs")) as r:
        logits = r.infer(batch)

The suite runs on CPUs only: it checks eager mode against ONNX Runtime and that cudagraphs
and half refuse a CPU device; CUDA, fp16 and cudagraphs runs have no test in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import Runner, RunnerOptions, TensorSpec, check_type

MODES = ("eager", "compile", "cudagraphs")


@dataclass(frozen=True)
class TorchOptions(RunnerOptions):
    mode: str = "eager"
    half: bool = False  # fp16 weights and activations; CUDA only (CPU fp16 convs are slow)
    compile_mode: str = "default"  # torch.compile's mode: default | max-autotune | ...
    threads: int = 0  # torch.set_num_threads for CPU runs; 0 = leave torch's setting
    channels_last: bool = False  # NHWC memory format (faster convs on recent GPUs/CPUs)

    def __post_init__(self) -> None:
        check_type("torch", "mode", self.mode, str, choices=MODES)
        check_type("torch", "half", self.half, bool)
        check_type("torch", "compile_mode", self.compile_mode, str,
                   choices=("default", "reduce-overhead", "max-autotune",
                            "max-autotune-no-cudagraphs"))
        check_type("torch", "threads", self.threads, int, minimum=0)
        check_type("torch", "channels_last", self.channels_last, bool)


class TorchRunner(Runner):
    name: ClassVar[str] = "torch"

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int] | None = None,
                 device: str = "cpu", options: TorchOptions | None = None) -> None:
        """model: an nn.Module (a zoo model knows its input; other modules need
        `input_shape` (C, H, W))."""
        if not isinstance(model, nn.Module):
            raise EdgeCNNError(f"TorchRunner needs an nn.Module, got {type(model).__name__}")
        if input_shape is None:
            config = getattr(model, "config", None)
            resolution = getattr(getattr(model, "spec", None), "resolution", None)
            if not config or resolution is None:
                raise EdgeCNNError("pass input_shape=(C, H, W) for a model outside the zoo")
            input_shape = (config["in_chans"], resolution, resolution)
        super().__init__(TensorSpec("input", "float32", (None, *input_shape)), device)
        self.options = options if options is not None else TorchOptions()
        try:
            self.torch_device = torch.device(device)
        except RuntimeError:
            raise EdgeCNNError(f"unknown torch device {device!r}") from None
        on_cuda = self.torch_device.type == "cuda"
        if self.options.mode == "cudagraphs" and not on_cuda:
            raise EdgeCNNError("cudagraphs mode needs a CUDA device")
        if self.options.half and not on_cuda:
            raise EdgeCNNError("half=True is for CUDA devices")
        if on_cuda and not torch.cuda.is_available():
            raise EdgeCNNError(f"device {device!r}: this torch has no CUDA (or no GPU is visible)")
        self.model = model
        self._fn: Any = None
        self._graphs: dict[tuple[int, ...], tuple[Any, torch.Tensor, torch.Tensor]] = {}

    def activate_impl(self) -> None:
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        dtype = torch.float16 if self.options.half else torch.float32
        fmt = torch.channels_last if self.options.channels_last else torch.contiguous_format
        self.dtype, self.fmt = dtype, fmt
        self.model = self.model.eval().to(self.torch_device, dtype=dtype, memory_format=fmt)
        if self.options.mode == "compile":
            self._fn = torch.compile(self.model, mode=self.options.compile_mode)
        else:
            self._fn = self.model

    @torch.inference_mode()
    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch)
        if self.options.mode == "cudagraphs":
            return self._replay(x)
        x = x.to(self.torch_device, dtype=self.dtype, memory_format=self.fmt,
                 non_blocking=True)
        return self._fn(x).float().cpu().numpy()

    def _replay(self, x: torch.Tensor) -> np.ndarray:
        """Capture a graph per batch shape on first sight, then copy in, replay, copy out."""
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = torch.zeros(key, device=self.torch_device, dtype=self.dtype).to(
                memory_format=self.fmt)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):  # warm-up outside the graph (cuDNN autotuning)
                for _ in range(3):
                    self.model(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x, non_blocking=True)
        graph.replay()
        return static_out.float().cpu().numpy()  # .cpu() synchronizes the stream

    def deactivate_impl(self) -> None:
        self._fn = None
        self._graphs.clear()

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)

    def describe(self) -> str:
        extras = ", fp16" if self.options.half else ""
        return f"torch {torch.__version__} ({self.device}, {self.options.mode}{extras})"
