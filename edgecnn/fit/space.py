"""The candidates of a fit: a family's width multiplier x input resolution grid, each at a
precision, and later pruned variants of one of them.

A candidate is a value (frozen) with a stable key: the key names its files in the fit
directory, so that a rerun finds what an earlier, killed run finished.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgecnn.errors import EdgeCNNError

PRECISIONS = ("fp32", "int8")
# The MobileNet paper's width multipliers; resolutions for small images (mnist5k, digits:
# 28 and 8 px), the paper's 128-224 cost minutes per epoch on two cores.
DEFAULT_ALPHAS = (0.25, 0.5, 0.75, 1.0)
DEFAULT_RESOLUTIONS = (32, 48, 64)
NEAR_FACTOR = 2.0  # "narrowly misses" the budget: within twice it


@dataclass(frozen=True)
class FitCandidate:
    family: str  # zoo name or import path
    alpha: float
    resolution: int
    prune: float = 0.0  # share of MACs removed by structured pruning (0: none)
    precision: str = "fp32"

    @property
    def key(self) -> str:
        """File-name-safe and stable: mobilenet-a0.5-r32-p0-fp32."""
        family = "".join(ch if ch.isalnum() or ch in "._-" else "." for ch in self.family)
        return f"{family}-a{self.alpha:g}-r{self.resolution}-p{self.prune:g}-{self.precision}"

    @property
    def arch(self) -> FitCandidate:
        """The trained network this candidate is (precision is an export choice)."""
        return FitCandidate(self.family, self.alpha, self.resolution, self.prune)

    @property
    def name(self) -> str:
        """As tables show it: mobilenet a0.5 r32 pruned 30% fp32."""
        return (f"{self.family} a{self.alpha:g} r{self.resolution}"
                + (f" pruned {self.prune:.0%}" if self.prune else "") + f" {self.precision}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_row(c: FitCandidate, ms: float, source: str, top1: float | None,
                  budget: float, **extra: Any) -> dict[str, Any]:
    """fit.json's row for a candidate: its latency (measured | predicted) and top-1."""
    return {"name": c.name, "family": c.family, "alpha": c.alpha, "resolution": c.resolution,
            "prune": c.prune, "precision": c.precision, "latency_ms": round(ms, 4),
            "latency_source": source, "top1": top1, "meets_budget": ms <= budget, **extra}


def alpha_families() -> list[str]:
    """Zoo models whose paper defines a width multiplier."""
    from edgecnn.registry import get_spec, list_models

    return [name for name in list_models() if get_spec(name).has_alpha]


def check_family(name: str) -> str:
    """The family's registry name; a family without a width multiplier is refused with the
    list of those that have one. An import path must take alpha or width_mult."""
    from edgecnn.registry import get_spec

    spec = get_spec(name)
    if not spec.has_alpha:
        raise EdgeCNNError(f"{name} has no width multiplier to fit; families with one: "
                           f"{', '.join(alpha_families())} (or an import path whose callable "
                           "takes alpha or width_mult)")
    return spec.name


def grid(family: str, alphas: tuple[float, ...], resolutions: tuple[int, ...],
         precisions: tuple[str, ...]) -> list[FitCandidate]:
    """Every (alpha, resolution, precision), unpruned, in a fixed order."""
    from edgecnn.registry import get_spec

    spec = get_spec(family)
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise EdgeCNNError(f"--precision takes {', '.join(PRECISIONS)}, got "
                           f"{','.join(precisions) or 'nothing'}")
    small = [r for r in resolutions if r < spec.min_resolution]
    if small:
        raise EdgeCNNError(f"{family} needs a resolution of at least {spec.min_resolution}, "
                           f"got {small[0]}")
    for a in alphas:
        if not 0 < a <= 4:
            raise EdgeCNNError(f"alpha must be in (0, 4], got {a:g}")
    return [FitCandidate(spec.name, float(a), int(r), 0.0, p)
            for p in precisions for a in sorted(set(alphas)) for r in sorted(set(resolutions))]
