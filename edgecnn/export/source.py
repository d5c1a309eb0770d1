"""What is exported: a zoo model (or import path) with initialized weights, one rebuilt from
a checkpoint, a user's nn.Module, or a foreign ONNX file.

    src = resolve_source(ZooSource("mobilenet", alpha=0.5))      # untrained: for latency work
    src = resolve_source(CheckpointSource("runs/m/best.pt"))     # everything from the checkpoint
    src.model, src.resolution, src.mean, src.classes, src.trained, src.checkpoint_sha256

A checkpoint says its own alpha, resolution and classes; a value that contradicts it is an
error rather than a silent rebuild of another network. An ONNX file has no PyTorch model:
`src.model` is None and `src.onnx` holds its graph (see export/foreign.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.export.spec import (
    CheckpointSource,
    ModuleSource,
    Source as SourceSpec,
    ZooSource,
    check_mean_std,
)


@dataclass
class Source:
    model: nn.Module | None  # eval mode; None for an ONNX file
    name: str  # zoo name, import path, module class name or ONNX file stem
    alpha: float
    resolution: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    trained: bool
    checkpoint: str = ""  # path, "" for an untrained export
    checkpoint_sha256: str = ""
    dataset: str = ""  # what the model was trained on (fine-tuning and accuracy data)
    kind: str = "zoo"  # zoo | checkpoint | module | onnx
    onnx: Any = None  # onnx.ModelProto of a foreign file, normalized (export/foreign.py)
    onnx_report: dict[str, Any] = field(default_factory=dict)  # what was done to that file
    onnx_props: dict[str, str] = field(default_factory=dict)  # the file's own metadata


def resolve_source(source: SourceSpec, *, seed: int = 0) -> Source:
    """The model and what the artifact says about it (a foreign ONNX file goes through
    export/foreign.py's `from_onnx` instead)."""
    if isinstance(source, CheckpointSource):
        return _from_checkpoint(Path(source.path).expanduser(), alpha=source.alpha,
                                resolution=source.resolution, num_classes=source.num_classes)
    if isinstance(source, ModuleSource):
        return _from_module(source)
    if not isinstance(source, ZooSource):
        raise EdgeCNNError(f"not an export source: {type(source).__name__}")
    return _from_zoo(source.name, alpha=source.alpha, resolution=source.resolution,
                     num_classes=source.num_classes, in_chans=source.in_chans, seed=seed,
                     round_channels=source.round_channels)


def _from_zoo(name: str, *, alpha: float | None, resolution: int | None,
              num_classes: int | None, in_chans: int | None, seed: int,
              round_channels: int | None = None) -> Source:
    from edgecnn.profile import round_kwargs
    from edgecnn.registry import create_model, get_spec

    spec = get_spec(name)  # unknown name: one line with the closest names
    resolution = spec.resolution if resolution is None else resolution
    _check_resolution(resolution, spec.min_resolution, spec.name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(spec.name, alpha=1.0 if alpha is None else alpha,
                             num_classes=num_classes, in_chans=in_chans,
                             **round_kwargs(spec.name, round_channels))
        chans = model.config["in_chans"]
        init_bn_stats(model, torch.randn(8, chans, resolution, resolution))
    n = model.config["num_classes"]
    mean, std = (spec.mean, spec.std) if len(spec.mean) == chans else \
        ((spec.mean[0],) * chans, (spec.std[0],) * chans)
    return Source(model=model, name=spec.name, alpha=model.config["alpha"],
                  resolution=resolution, in_chans=chans, mean=mean, std=std,
                  classes=tuple(str(i) for i in range(n)), trained=False)


def _from_module(src: ModuleSource) -> Source:
    """A user's module: taken as given (a copy is pruned, never the caller's object)."""
    model = src.module
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    in_chans = src.in_chans or (first.in_channels if first is not None else len(src.mean))
    check_mean_std(src.mean, src.std, in_chans)
    classes = tuple(str(i) for i in range(src.classes)) if isinstance(src.classes, int) \
        else tuple(src.classes)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            out = model(torch.zeros(1, in_chans, src.resolution, src.resolution))
        except Exception as exc:  # the module does not take this input
            raise EdgeCNNError(f"the module fails on a (1, {in_chans}, {src.resolution}, "
                               f"{src.resolution}) input ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        finally:
            model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != len(classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise EdgeCNNError(f"the module returns {shape}; an image classifier returns "
                           f"(batch, {len(classes)}) logits, one per class")
    return Source(model=model.eval(), name=src.name or type(model).__name__, alpha=1.0,
                  resolution=src.resolution, in_chans=in_chans, mean=tuple(map(float, src.mean)),
                  std=tuple(map(float, src.std)), classes=classes, trained=src.trained,
                  dataset=src.data, kind="module")


def _from_checkpoint(path: Path, *, alpha: float | None, resolution: int | None,
                     num_classes: int | None) -> Source:
    from edgecnn.checkpoint import file_sha256, load_checkpoint, model_from_checkpoint

    data = load_checkpoint(path)  # missing, corrupt or foreign: one-line EdgeCNNError
    spec = data["model"]
    if not isinstance(spec, dict) or "name" not in spec:
        raise EdgeCNNError(f"{path}: checkpoint does not name its model")
    ck_alpha = float(spec.get("alpha", 1.0))
    ck_res, ck_classes = int(data["resolution"]), len(data["classes"])
    for flag, given, stored in (("--alpha", alpha, ck_alpha),
                                ("--resolution", resolution, ck_res),
                                ("--num-classes", num_classes, ck_classes)):
        if given is not None and given != stored:
            raise EdgeCNNError(f"{flag} {given:g} contradicts the checkpoint ({stored:g}); "
                               f"leave it out to export the checkpoint as trained")
    model = model_from_checkpoint(data, source=str(path))
    if len(data["mean"]) != spec["in_chans"] or len(data["std"]) != spec["in_chans"]:
        raise EdgeCNNError(f"{path}: mean/std do not match the model's input channels")
    return Source(model=model, name=spec["name"], alpha=ck_alpha, resolution=ck_res,
                  in_chans=int(spec["in_chans"]), mean=tuple(map(float, data["mean"])),
                  std=tuple(map(float, data["std"])),
                  classes=tuple(str(c) for c in data["classes"]), trained=True,
                  checkpoint=str(path), checkpoint_sha256=file_sha256(path),
                  dataset=str(data.get("dataset", "")), kind="checkpoint")


def _check_resolution(resolution: int, minimum: int, name: str) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < minimum:
        raise EdgeCNNError(f"{name} needs a resolution of at least {minimum}, got {resolution}")


def init_bn_stats(model: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm statistics from one batch, then eval mode (for initialized weights).

    A freshly initialized network in eval mode (running variance 1) shrinks activations layer
    after layer, to ~1e-17 at the logits of an untrained MobileNet: denormal floats then skew
    every latency figure and make parity checks vacuous. Statistics from a batch keep the
    activations O(1), as in a trained network.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    for m in bns:
        m.momentum = 0.1  # back to torch's default for any later training

