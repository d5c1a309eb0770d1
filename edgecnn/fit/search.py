"""Accuracy where it matters: successive halving over the candidates that can meet the budget.

Rung 0 trains every candidate that meets the budget, and the nearest ones above it (the
source of the pruned candidate, netadapt.py), for a short schedule; each later rung keeps the
better half of those that meet the budget (and the best one above it) and trains them on from
their own weights, until the last rung has given the survivors the full schedule's epochs.
Every rung's result is saved atomically in DIR/candidates/, so a rerun after a kill skips
what was finished. A job that would not finish within the time budget is not started; the
first one that cannot is the one-line error "too short to train one candidate".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.fit.executor import TrainJob, TrainOutcome
from edgecnn.fit.space import FitCandidate


@dataclass(frozen=True)
class Trained:
    candidate: FitCandidate  # an architecture (precision fp32)
    top1: float
    checkpoint: str
    epochs: int  # epochs it was trained in all
    rung: int


def rung_epochs(epochs: int) -> list[int]:
    """Epochs added at each rung, summing to `epochs`: a quarter, a quarter, a half
    (fewer rungs when the schedule is too short to split)."""
    if epochs < 2:
        return [epochs]
    if epochs < 4:
        return [1, epochs - 1]
    first = epochs // 4
    return [first, first, epochs - 2 * first]


def halve(candidates: list[FitCandidate], *, latency: Callable[[FitCandidate], float],
          budget_ms: float, data: str, epochs: int, out: Path, executor: Any,
          deadline: float | None, log: Callable[[str], None] = lambda line: None,
          progress: Callable[[int], None] = lambda n: None) -> dict[str, Trained]:
    """Train by successive halving; the last result of each candidate trained, by key."""
    done: dict[str, Trained] = {}
    alive = list(candidates)
    total_epochs = 0
    per_epoch_s: list[float] = []  # seconds per epoch per MAC-free unit: the jobs so far
    for rung, added in enumerate(rung_epochs(epochs)):
        total_epochs += added
        for c in alive:
            saved = _load(out, c, rung)
            if saved is None:
                prev = done.get(c.key)
                outcome = _train(c, rung, added, prev, data, out, executor, deadline,
                                 per_epoch_s, bool(done), log)
                if outcome is None:  # out of time: keep what is trained
                    return done
                saved = Trained(c, outcome.top1, outcome.checkpoint, total_epochs, rung)
                _save(out, saved, outcome.seconds)
                per_epoch_s.append(outcome.seconds / added)
                log(f"trained {c.key} to {total_epochs} epoch(s): {saved.top1:.2f}% top-1 "
                    f"({outcome.seconds:.0f} s)")
            else:
                log(f"{c.key}: rung {rung} done earlier ({saved.top1:.2f}%), skipped")
            done[c.key] = saved
            progress(1)
        alive = _survivors(alive, done, latency, budget_ms)
        if rung + 1 < len(rung_epochs(epochs)) and alive:
            log(f"rung {rung + 1}: {len(alive)} candidate(s) go on: "
                + ", ".join(c.key for c in alive))
    return done


def planned_jobs(n_meet: int, n_above: int, epochs: int) -> int:
    """How many training jobs halving runs (the progress bar's total)."""
    jobs, meet, above = 0, n_meet, n_above
    for _ in rung_epochs(epochs):
        jobs += meet + above
        meet, above = (meet + 1) // 2 if meet > 1 else meet, min(above, 1)
    return jobs


def _survivors(alive: list[FitCandidate], done: dict[str, Trained],
               latency: Callable[[FitCandidate], float], budget_ms: float
               ) -> list[FitCandidate]:
    """The better half of those meeting the budget (at least one), and the best above it."""
    by_acc = sorted(alive, key=lambda c: -done[c.key].top1)
    meet = [c for c in by_acc if latency(c) <= budget_ms]
    above = [c for c in by_acc if latency(c) > budget_ms]
    keep = meet[:max(1, (len(meet) + 1) // 2)] if len(meet) > 1 else meet
    return keep + above[:1]


def _train(c: FitCandidate, rung: int, added: int, prev: Trained | None, data: str, out: Path,
           executor: Any, deadline: float | None, per_epoch_s: list[float], any_done: bool,
           log: Callable[[str], None]) -> TrainOutcome | None:
    left = deadline - time.monotonic() if deadline is not None else float("inf")
    estimate = (max(per_epoch_s) * added) if per_epoch_s else None
    if estimate is not None and estimate > left and any_done:
        log(f"time budget: {left / 60:.1f} min left, {c.key}'s rung {rung} needs about "
            f"{estimate / 60:.1f} min; stopping the search")
        return None
    log(f"training {c.key}: rung {rung}, {added} epoch(s)"
        + (f" on from {prev.epochs}" if prev else ""))
    job = TrainJob(c.family, c.alpha, c.resolution, data, added,
                   str(out / "runs" / c.key / f"rung{rung}"),
                   init=prev.checkpoint if prev else None)
    outcome = executor.train(job, timeout_s=None if deadline is None else max(left, 1.0))
    if outcome is None and not any_done:
        raise EdgeCNNError(f"--time-budget is too short to train one candidate: {c.key} did "
                           f"not finish {added} epoch(s) in the {max(left, 0) / 60:.1f} min "
                           "left")
    return outcome


def _path(out: Path, c: FitCandidate, rung: int) -> Path:
    return out / "candidates" / f"{c.key}.rung{rung}.json"


def _load(out: Path, c: FitCandidate, rung: int) -> Trained | None:
    path = _path(out, c, rung)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not Path(data["checkpoint"]).is_file():
        return None  # its weights are gone: train it again
    return Trained(FitCandidate(**data["candidate"]), data["top1"], data["checkpoint"],
                   data["epochs"], data["rung"])


def _save(out: Path, t: Trained, seconds: float) -> None:
    from edgecnn.fileio import atomic_write

    _path(out, t.candidate, t.rung).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(_path(out, t.candidate, t.rung), json.dumps(
        {**asdict(t), "candidate": t.candidate.to_dict(), "seconds": seconds}, indent=2))
