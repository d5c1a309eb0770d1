"""Pruning before export: structured (channels out, for speed) or unstructured (zeros, for size).

Structured: torch-pruning's dependency graph removes whole channels and keeps every coupled
layer consistent (depthwise convolutions, Fire/SqueezeNext concatenations, residual
additions, the BN after each conv). `ratio` is the share of MACs to remove: channels are
taken off in small steps, by the L2 norm of each coupled group, until the model's MACs fall
to (1 - ratio) of the original; the channels each pruned layer keeps are rounded down to a
multiple of `round_to` (8 by default, as torch-pruning's `round_to`: SIMD and tensor-core
friendly; 1: no rounding). `scope="uniform"` prunes every layer by the same share (what a
width multiplier does); `"global"` ranks groups across layers (normalized per group), so it
takes more from the layers that matter less.

What alignment alone bought (`alignment`): the source model is pruned a second time, to the
same MACs target with round_to=1, giving the channel counts the importance ranking chose
without rounding. The export times that reference with the other two (one harness,
interleaved), so unpruned -> unrounded is what removal bought and unrounded -> rounded what
alignment bought; both prunes stop at the first step that reaches the target, so their MACs
differ a little and are reported side by side. The reference is never fine-tuned: dense
kernels' latency does not depend on the weights' values. Its cost (one more prune, ONNX
export and timing case: seconds for edge models) buys the only measured answer; MACs alone
would hide the point, since rounding changes MACs by a percent and latency by up to 3x.

Unstructured: global magnitude pruning (Han et al., Deep Compression): `ratio` of all
conv/linear weights are zeroed, the smallest first, the mask held through fine-tuning and then
made permanent. Dense kernels run no faster; the gain is in the compressed artifact. The
output layer keeps its weights and the share is taken from the others: classifiers start at a
small scale (std 0.01 in SqueezeNet, as in torchvision) and stay there, so one threshold for
all layers took 98% of a trained SqueezeNet 1.1's conv10 at ratio 0.8 and every image got the
same class (benchmarks/compress/deep_compression.md). With 10 classes that layer is under 1%
of the weights; with 1,000 it is 40% of SqueezeNet's, left dense (the same rule as structured
pruning, which never removes a class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.export.spec import PruneSpec


@dataclass
class PruneReport:
    method: str
    ratio: float
    scope: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    nonzero_params_after: int  # unstructured: what remains after zeroing
    sparsity: float  # share of zero weights in conv/linear layers
    finetune_epochs: int = 0
    channels: dict[str, list[int]] = field(default_factory=dict)  # layer: [before, after]
    # conv/linear layers whose outputs kept every channel, and why: reported, not skipped
    unpruned: list[dict[str, str]] = field(default_factory=list)

    @property
    def macs_removed(self) -> float:
        return 1.0 - self.macs_after / self.macs_before


def prune(model: nn.Module, config: PruneSpec, *, resolution: int, in_chans: int
          ) -> PruneReport:
    """Prune `model` in place (eval mode afterwards); fine-tuning is the caller's."""
    x = torch.zeros(1, in_chans, resolution, resolution)
    params0, macs0 = _params(model), count_macs(model, x)
    unpruned: list[dict[str, str]] = []
    if config.method == "structured":
        channels, unpruned = _structured(model, config, x, macs0)
        params1, macs1 = _params(model), count_macs(model, x)
    else:  # same dense shapes: same params and MACs, zeros inside
        channels, params1, macs1 = {}, params0, macs0
        model.eval()  # the output layer is found by a forward pass: no BN statistics move
        _unstructured_mask(model, config.ratio, _output_layer(model, x))
    return PruneReport(method=config.method, ratio=config.ratio, scope=config.scope,
                       params_before=params0, params_after=params1, macs_before=macs0,
                       macs_after=macs1, nonzero_params_after=_nonzero(model),
                       sparsity=weight_sparsity(model), channels=channels, unpruned=unpruned)


def alignment(source: nn.Module, config: PruneSpec, rounded: nn.Module, *, resolution: int,
              in_chans: int) -> tuple[nn.Module | None, dict[str, Any] | None]:
    """The unrounded reference (a pruned copy of `source`, `source` untouched) and what
    rounding changed against it: MACs and params of both, and {layer: [unrounded, rounded]}
    for every layer whose width rounding changed. (None, None) when nothing is rounded
    (unstructured, round_to 1); (None, {"round_to", "skipped"}) when the reference cannot
    reach the target (rounding down removes more channels per step than no rounding)."""
    if config.method != "structured" or config.round_to <= 1:
        return None, None
    import copy

    reference = copy.deepcopy(source)
    try:
        report = prune(reference, replace(config, round_to=1), resolution=resolution,
                       in_chans=in_chans)
    except EdgeCNNError as exc:
        return None, {"round_to": config.round_to, "skipped": str(exc)}
    x = torch.zeros(1, in_chans, resolution, resolution)
    ours, theirs = _widths(rounded), _widths(reference)
    return reference, {
        "round_to": config.round_to,
        "macs_unrounded": report.macs_after, "macs_rounded": count_macs(rounded, x),
        "params_unrounded": report.params_after, "params_rounded": _params(rounded),
        "channels": {k: [theirs[k], ours[k]] for k in ours if theirs.get(k) != ours[k]},
    }


# --------------------------------------------------------------------------------------------
# Structured.

def _structured(model: nn.Module, config: PruneSpec, x: torch.Tensor,
                macs0: int) -> tuple[dict[str, list[int]], list[dict[str, str]]]:
    import torch_pruning as tp

    model.eval()
    # The dependency graph is traced on a small input (same graph, a fraction of the time) for
    # zoo models; a user's model may fix its input size (a Linear after a flatten): full size.
    spec = getattr(model, "spec", None)
    small = max(spec.min_resolution, 32) if spec is not None and \
        spec.family != "import path" else x.shape[-1]
    example = torch.randn(1, x.shape[1], min(small, x.shape[-1]), min(small, x.shape[-1]))
    before = _widths(model)
    target = (1.0 - config.ratio) * macs0
    # MACs fall roughly with the square of the kept channels: the channel share to remove is
    # about 1 - sqrt(1 - ratio). Steps of a fifteenth of 1.6x that, importance re-ranked each
    # step, stopping at the first step that reaches the target.
    steps = 15
    reach = min(0.95, 1.6 * (1.0 - (1.0 - config.ratio) ** 0.5))
    output = _output_layer(model, example)
    try:
        pruner = tp.pruner.MetaPruner(
            model, example,
            importance=tp.importance.GroupMagnitudeImportance(p=2, normalizer="mean"),
            global_pruning=config.scope == "global",
            pruning_ratio=reach, max_pruning_ratio=0.95, iterative_steps=steps,
            round_to=config.round_to, ignored_layers=[output],
        )
        prunable = _prunable_outputs(pruner, output)
        macs = macs0
        for _ in range(steps):
            pruner.step()
            macs = count_macs(model, x)
            if macs <= target:
                break
    except EdgeCNNError:
        raise
    except Exception as exc:  # an architecture the dependency graph cannot follow
        raise EdgeCNNError(f"structured pruning failed on this model ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:120]})") from None
    if macs > target:
        raise EdgeCNNError(f"structured pruning could not remove {config.ratio:.0%} of the MACs"
                           f" (reached {1 - macs / macs0:.0%}); choose a smaller ratio")
    model.eval()
    after = _widths(model)
    changed = {k: [before[k], after[k]] for k in before if after.get(k) != before[k]}
    unpruned = []
    for name, module in model.named_modules():
        if name not in before or name in changed:
            continue
        if module is output:
            reason = "the output layer: one channel per class"
        elif id(module) not in prunable:
            reason = "outside torch-pruning's dependency groups (its outputs cannot be traced)"
        else:
            reason = "kept whole: too few channels at multiples of round_to, or ranked needed"
        unpruned.append({"layer": name, "type": type(module).__name__, "reason": reason})
    return changed, unpruned


def _prunable_outputs(pruner, output: nn.Module) -> set[int]:  # noqa: ANN001
    """ids of the layers whose output channels some dependency group can remove."""
    ids: set[int] = set()
    for group in pruner.DG.get_all_groups(ignored_layers=[output],
                                          root_module_types=(nn.Conv2d, nn.Linear)):
        for dep, _ in group:
            if "out" in getattr(dep.handler, "__name__", ""):
                ids.add(id(dep.target.module))
    return ids


def _output_layer(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The last conv/linear to run: its outputs are the classes and must all stay."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        raise EdgeCNNError("the model has no conv or linear layer to prune")
    return order[-1]


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds (conv + linear) for an input shaped like x, batch 1: edgecnn.profile's
    count (torch's FLOP counter on meta stand-ins; the model itself is untouched)."""
    from edgecnn.profile import count_module

    return count_module(model, x.shape[-1], in_chans=x.shape[1])[1]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _widths(model: nn.Module) -> dict[str, int]:
    return {name: m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


# --------------------------------------------------------------------------------------------
# Unstructured.

def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _unstructured_mask(model: nn.Module, ratio: float, output: nn.Module) -> None:
    """Zero `ratio` of all conv/linear weights, the globally smallest outside the `output`
    layer (module doc); the mask holds until `make_permanent`."""
    from torch.nn.utils import prune as tprune

    layers = _prunable(model)
    rest = [(m, n) for m, n in layers if m is not output]
    total = sum(getattr(m, n).numel() for m, n in layers)
    others = sum(getattr(m, n).numel() for m, n in rest)
    amount = round(ratio * total)  # a count: the same share of all weights as asked
    if not rest or amount > others:
        most = math.floor(100 * others / total) / 100
        raise EdgeCNNError(f"unstructured pruning cannot zero {ratio:.0%} of the weights: the "
                           f"output layer keeps its {total - others:,} of {total:,}; "
                           f"choose a ratio of at most {most:.2f}")
    tprune.global_unstructured(rest, pruning_method=tprune.L1Unstructured, amount=amount)


def ratio_steps(config: PruneSpec) -> list[float]:
    """The sparsity after each step. Iterative (unstructured, `steps` > 1), prune and
    fine-tune in turn as Han et al. do, on Zhu & Gupta's schedule ("To prune, or not to
    prune", 2017): s_k = ratio * (1 - (1 - k/n)^3), large steps while many weights are
    redundant, small ones near the end. A trained SqueezeNet 1.1 pruned 80% one-shot lost
    1.0 point in int8 after 8 epochs of fine-tuning, in 4 steps of 2 epochs none
    (benchmarks/compress/deep_compression.md)."""
    n = config.steps
    return [config.ratio * (1.0 - (1.0 - k / n) ** 3) for k in range(1, n + 1)]


def make_permanent(model: nn.Module) -> None:
    """Fold unstructured masks into the weights (plain tensors again, zeros in place)."""
    from torch.nn.utils import prune as tprune

    for module, name in _prunable(model):
        if tprune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            tprune.remove(module, name)


def _weight(module: nn.Module, name: str) -> torch.Tensor:
    """The effective weight, also while a pruning mask is attached (orig * mask)."""
    if hasattr(module, f"{name}_mask"):
        return (getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask")).detach()
    return getattr(module, name).detach()


def weight_sparsity(model: nn.Module) -> float:
    weights = [_weight(m, n) for m, n in _prunable(model)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / max(total, 1))


def _nonzero(model: nn.Module) -> int:
    """Nonzero parameters, counting masked weights as they will be once made permanent."""
    masked = {id(getattr(m, f"{n}_orig")) for m, n in _prunable(model) if hasattr(m, f"{n}_orig")}
    rest = sum(int((p.detach() != 0).sum()) for p in model.parameters() if id(p) not in masked)
    return int(rest + sum(int((_weight(m, n) != 0).sum()) for m, n in _prunable(model)
                          if hasattr(m, f"{n}_orig")))
