"""Parameters and multiply-adds of a model at a resolution, without running a convolution.

The model is built on the meta device (shapes only, no memory, no arithmetic) and counted
with torch's own FLOP counter. MACs follow the papers' convention: multiply-adds of the
convolutions and fully connected layers only (FLOPs / 2; BN, activations, pooling and
additions are not counted). Parameters are the trainable tensors (BN running statistics
are buffers, not parameters), as torchvision counts them.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgecnn.errors import EdgeCNNError
from edgecnn.registry import create_model, get_spec


@dataclass
class LayerProfile:
    name: str  # dotted module path, e.g. "features.3.1"
    type: str  # module class, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # (B, C, H, W) for convs, (B, F) for linears
    params: int
    macs: int


@dataclass
class Profile:
    model: str
    alpha: float
    resolution: int
    num_classes: int
    in_chans: int
    params: int
    macs: int
    layers: list[LayerProfile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile_model(
    name: str,
    *,
    alpha: float = 1.0,
    resolution: int | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    per_layer: bool = False,
    **kwargs: Any,
) -> Profile:
    """Params and MACs of a zoo model at `resolution` (default: the model's own), batch 1."""
    spec = get_spec(name)
    resolution = spec.resolution if resolution is None else resolution
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise EdgeCNNError(f"resolution must be a positive integer, got {resolution!r}")
    with torch.device("meta"):
        model = create_model(name, alpha=alpha, num_classes=num_classes, in_chans=in_chans,
                             **kwargs)
    params, macs, layers = count_module(model, resolution, per_layer=per_layer)
    return Profile(model=spec.name, alpha=model.config["alpha"], resolution=resolution,
                   num_classes=model.config["num_classes"], in_chans=model.config["in_chans"],
                   params=params, macs=macs, layers=layers)


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _norm_shape(norm: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """A BatchNorm's output shape without its arithmetic; its channel check kept, so that a
    layer left with the wrong width (a pruning bug) still fails the count."""
    if x.dim() < 2 or x.shape[1] != norm.num_features:
        raise RuntimeError(f"{type(norm).__name__}({norm.num_features}) got an input of "
                           f"shape {tuple(x.shape)}")
    return x


def count_module(
    model: nn.Module, resolution: int, *, in_chans: int | None = None, per_layer: bool = False
) -> tuple[int, int, list[LayerProfile]]:
    """(params, MACs, per-layer rows) of any module at a square input, on the meta device."""
    if in_chans is None:
        in_chans = getattr(model, "config", {}).get("in_chans", 3)
    params = sum(p.numel() for p in model.parameters())
    # Swap every tensor for a meta stand-in for the call only: the caller's model is untouched.
    meta_state = {k: v if v.is_meta else torch.empty_like(v, device="meta")
                  for k, v in (*model.named_parameters(), *model.named_buffers())}
    was_training = model.training
    model.eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    if per_layer:
        for mod_name, mod in model.named_modules():
            if mod_name and not any(True for _ in mod.children()):  # leaves only
                hooks.append(mod.register_forward_hook(_shape_recorder(shapes, mod_name)))
    # BatchNorm on the meta device runs through torch's Python reference decompositions,
    # ~3 ms a call; it adds no MACs to the count and keeps its input's shape, so for the
    # count it checks its channels and passes its input through (an instance attribute, for
    # the call only; torch's own classes only, not subclasses that may do more). With the
    # reuse of meta tensors above: `edgecnn list --json` (the 44 zoo models) 16.8 s -> 9.5 s
    # on a 2-vCPU AMD EPYC, torch 2.13, the same figures.
    norms = [m for m in model.modules() if type(m) in _NORMS and "forward" not in vars(m)]
    try:
        for m in norms:
            m.forward = functools.partial(_norm_shape, m)  # type: ignore[method-assign]
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            x = torch.empty(1, in_chans, resolution, resolution, device="meta")
            torch.func.functional_call(model, meta_state, (x,))
    finally:
        for m in norms:
            vars(m).pop("forward", None)
        model.train(was_training)
        for h in hooks:
            h.remove()
    macs = counter.get_total_flops() // 2
    layers: list[LayerProfile] = []
    if per_layer:
        prefix = type(model).__name__ + "."
        flops = {k.removeprefix(prefix): sum(v.values())
                 for k, v in counter.get_flop_counts().items()}
        modules = dict(model.named_modules())
        for mod_name, shape in shapes.items():
            mod = modules[mod_name]
            layers.append(LayerProfile(
                name=mod_name, type=type(mod).__name__, output_shape=shape,
                params=sum(p.numel() for p in mod.parameters(recurse=False)),
                macs=flops.get(mod_name, 0) // 2,
            ))
    return params, int(macs), layers


def _shape_recorder(shapes: dict[str, tuple[int, ...]], name: str):  # noqa: ANN202
    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            shapes.setdefault(name, tuple(output.shape))  # first call wins (shared modules)

    return hook


# What misaligned channels cost, as measured (issue 24): MobileNet v1 at 64 px in ONNX Runtime
# on an AMD EPYC, alpha 0.35 (11/22/44/89/179/358 channels) p50 0.609 ms, alpha 0.375 (more
# MACs, channels mostly multiples of 8) 0.197 ms.
MISALIGNED_COST = ("SIMD kernels (MLAS, oneDNN, NEON) work in blocks of 8 channels and a "
                   "remainder falls to slower paths: measured up to 3x the latency (MobileNet "
                   "v1 alpha 0.35 at 64 px, 0.609 ms vs 0.197 ms at alpha 0.375, ONNX Runtime, "
                   "AMD EPYC)")
# Families whose builder takes round_channels (the paper-exact widths stay the default).
ROUND_CHANNELS_FAMILIES = ("mobilenet",)


def channel_alignment(prof: Profile, multiple: int = 8) -> dict[str, Any] | None:
    """Conv/linear layers whose output channels a width multiplier (alpha != 1) left off a
    multiple of `multiple`, their share of the MACs, and one line saying what that costs;
    None when every layer aligns, or at the paper's alpha 1.
    `prof` needs per_layer=True. The classifier's outputs (the number of classes) are left
    out: the user's data decides them."""
    if prof.alpha == 1.0 or not get_spec(prof.model).has_alpha:
        return None  # the paper's own widths: what a width multiplier changes is the question
    layers = [layer for layer in prof.layers if layer.type in ("Conv2d", "Linear")
              and layer.output_shape[1] % multiple
              and not (layer.type == "Linear" and layer.output_shape[1] == prof.num_classes)]
    if not layers:
        return None
    widths = sorted({layer.output_shape[1] for layer in layers})
    share = sum(layer.macs for layer in layers) / prof.macs if prof.macs else 0.0
    shown = "/".join(map(str, widths[:8])) + ("/..." if len(widths) > 8 else "")
    line = (f"{prof.model} alpha {prof.alpha:g}: {len(layers)} layers have channel counts "
            f"that are not multiples of {multiple} ({shown}), {share:.0%} of the MACs; "
            f"{MISALIGNED_COST}")
    if get_spec(prof.model).family in ROUND_CHANNELS_FAMILIES:
        line += f". --round-channels {multiple} rounds every width to a multiple of {multiple}"
    return {"layers": [layer.name for layer in layers], "widths": widths,
            "macs_share": share, "warning": line}


def round_kwargs(name: str, round_channels: int | None) -> dict[str, int]:
    """create_model's keywords for --round-channels N: {} for the paper's widths; a family
    without the option is an error (MobileNet v2/v3 already round to 8)."""
    if not round_channels:
        return {}
    spec = get_spec(name)
    if spec.family not in ROUND_CHANNELS_FAMILIES:
        raise EdgeCNNError(f"--round-channels applies to {', '.join(ROUND_CHANNELS_FAMILIES)} "
                           f"(MobileNet v1); {spec.name}'s widths are its paper's")
    if round_channels < 2:
        raise EdgeCNNError(f"--round-channels must be 2 or more, got {round_channels}")
    return {"round_channels": round_channels}
