"""The one decision: the most accurate candidate that meets the budget.

Pure: candidates and a budget in, a `FitDecision` out (or the one-line refusal), nothing
measured or read here, so tests state the case and the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class Scored:
    """What choose needs of a candidate."""

    name: str  # "mobilenet a0.5 r32 fp32"
    latency_ms: float
    latency_source: str  # measured | predicted
    top1: float | None  # held-out top-1 percent; None: not trained


@dataclass(frozen=True)
class FitDecision:
    index: int  # into the candidates given
    bound: bool  # False: every candidate, trained or not, meets the budget (it did not bind)
    reason: str


def choose(candidates: Sequence[Scored], budget_ms: float, noise: float = 0.0) -> FitDecision:
    """Among trained candidates meeting `budget_ms`, the highest top-1 (ties: the faster).
    `noise`: the band the latencies were measured with (the same file timed twice in the
    same run, as a fraction): a candidate meets the budget only with that much to spare,
    since one inside the band may miss when timed again. None meets it: a refusal naming
    the fastest measured candidate and its latency."""
    trained = [i for i, c in enumerate(candidates) if c.top1 is not None]
    if not trained:
        raise EdgeCNNError("no candidate was trained: nothing to choose from")
    meets = [i for i in trained if candidates[i].latency_ms * (1.0 + noise) <= budget_ms]
    band = f" with the noise band ({noise:.1%}) to spare" if noise > 0 else ""
    if not meets:
        pool = [c for c in candidates if c.latency_source == "measured"] or list(candidates)
        fastest = min(pool, key=lambda c: c.latency_ms)
        raise EdgeCNNError(f"no candidate meets {budget_ms:g} ms{band}: the fastest "
                           f"measured, {fastest.name}, takes {fastest.latency_ms:.3f} ms")
    best = max(meets, key=lambda i: (candidates[i].top1, -candidates[i].latency_ms))
    bound = any(c.latency_ms * (1.0 + noise) > budget_ms for c in candidates)
    c = candidates[best]
    reason = (f"{c.name}: {c.top1:.2f}% top-1 at {c.latency_ms:.3f} ms "
              f"({c.latency_source}) within {budget_ms:g} ms{band}")
    inside = [candidates[i] for i in trained if i not in meets
              and candidates[i].latency_ms <= budget_ms and candidates[i].top1 > c.top1]
    if inside:
        top = max(inside, key=lambda x: x.top1)  # type: ignore[arg-type, return-value]
        reason += (f"; {top.name} ({top.top1:.2f}%, {top.latency_ms:.3f} ms) meets it only "
                   "inside the noise band")
    if not bound:
        reason += "; every candidate meets the budget: it did not bind"
    return FitDecision(best, bound, reason)


def as_scored(rows: Sequence[dict[str, Any]]) -> list[Scored]:
    """fit.json's candidate rows as choose's input."""
    return [Scored(r["name"], r["latency_ms"], r["latency_source"], r["top1"]) for r in rows]
