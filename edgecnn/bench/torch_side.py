"""The PyTorch side of a comparison: the zoo model an artifact describes, as a runner.

Imported only when the "torch" runtime is asked for. Weights come from the artifact's source
checkpoint when export.json names one that exists (a pruned artifact's checkpoint holds the
model before pruning: that is the model compared); otherwise the zoo's initialization with
BatchNorm statistics from a random batch (so activations have realistic magnitudes and no
denormals skew the timings). Latency does not depend on the values; accuracy does, and is
only reported for trained weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgecnn.bench.torch_runner import TorchOptions, TorchRunner
from edgecnn.errors import EdgeCNNError
from edgecnn.timing.harness import BenchCase


def torch_case(target: Any, mode: str, precision: str, batch: int, threads: int, device: str,
               base: dict[str, Any]) -> BenchCase:
    model = _model_for(target)
    options = TorchOptions(mode=mode, half=precision == "fp16", threads=threads)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    gpu_mem = ((lambda: torch.cuda.max_memory_allocated() / 2**20)
               if device.startswith("cuda") else None)
    return BenchCase(runtime=f"torch-{mode}", sync=sync, gpu_memory_mb=gpu_mem,
                     make_runner=lambda: TorchRunner(model, target.input_shape, device, options),
                     **base)


def _model_for(target: Any) -> torch.nn.Module:
    from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
    from edgecnn.export.source import init_bn_stats
    from edgecnn.metadata import ArtifactMetadata
    from edgecnn.registry import create_model
    from edgecnn.runtime.onnx_file import read_onnx

    info = target.info
    ckpt = info.get("checkpoint")
    if ckpt and Path(ckpt).is_file():
        # The trained model as training left it: for a pruned artifact, before pruning, so
        # that its speed-up counts what pruning saved (edgecnn pipeline's baseline).
        return model_from_checkpoint(load_checkpoint(ckpt), source=str(ckpt))
    if (info.get("options") or {}).get("prune"):
        raise EdgeCNNError(f"{target.label} is pruned and its checkpoint is not here: PyTorch "
                           "can only rebuild the unpruned zoo model; compare against the "
                           "unpruned artifact")
    onnx_file = next(iter(target.files.values()))
    meta = ArtifactMetadata.from_props(read_onnx(onnx_file).metadata_props, str(onnx_file))
    model = create_model(meta.model, alpha=meta.alpha, num_classes=len(meta.classes),
                         in_chans=meta.in_chans)
    init_bn_stats(model, torch.randn(8, *target.input_shape))
    return model.eval()
