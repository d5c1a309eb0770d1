"""What is exported: a zoo model with initialized weights, or one rebuilt from a checkpoint.

    src = resolve_source("mobilenet", alpha=0.5)          # untrained: for latency work
    src = resolve_source("runs/m/best.pt")                 # everything from the checkpoint
    src.model, src.resolution, src.mean, src.classes, src.trained, src.checkpoint_sha256

A checkpoint says its own alpha, resolution and classes; a flag that contradicts it is an
error rather than a silent rebuild of another network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError


@dataclass
class Source:
    model: nn.Module  # eval mode
    name: str  # zoo name
    alpha: float
    resolution: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    trained: bool
    checkpoint: str = ""  # path, "" for an untrained export
    checkpoint_sha256: str = ""
    dataset: str = ""  # what the checkpoint was trained on (fine-tuning data)


def resolve_source(
    source: str,
    *,
    alpha: float | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    seed: int = 0,
) -> Source:
    """A zoo name or a checkpoint path; flags given for a checkpoint must agree with it."""
    path = Path(source).expanduser()
    if path.is_file() or path.suffix in (".pt", ".pth"):
        return _from_checkpoint(path, alpha=alpha, resolution=resolution,
                                num_classes=num_classes)
    return _from_zoo(source, alpha=alpha, resolution=resolution, num_classes=num_classes,
                     seed=seed)


def _from_zoo(name: str, *, alpha: float | None, resolution: int | None,
              num_classes: int | None, seed: int) -> Source:
    from edgecnn.registry import create_model, get_spec

    spec = get_spec(name)  # unknown name: one line with the closest names
    resolution = spec.resolution if resolution is None else resolution
    _check_resolution(resolution, spec.min_resolution, spec.name)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(spec.name, alpha=1.0 if alpha is None else alpha,
                             num_classes=num_classes)
        init_bn_stats(model, torch.randn(8, spec.in_chans, resolution, resolution))
    n = model.config["num_classes"]
    return Source(model=model, name=spec.name, alpha=model.config["alpha"],
                  resolution=resolution, in_chans=spec.in_chans, mean=spec.mean, std=spec.std,
                  classes=tuple(str(i) for i in range(n)), trained=False)


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
                  dataset=str(data.get("dataset", "")))


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

