"""Accuracy where it matters: successive halving over the candidates that can meet the budget.

Rung 0 trains every candidate that meets the budget, and the nearest ones above it (the
source of the pruned candidate, netadapt.py), for the first epochs of the full schedule; each
later rung keeps the better half of those that meet the budget (and the best one above it)
and resumes their runs along that same schedule (one warm-up, one cosine: a rung is not a
fresh schedule restarting at the full learning rate), until the survivors have had all of it.
Every rung's result is saved atomically in DIR/candidates/, so a rerun after a kill skips
what was finished. A job still running at the time budget's end is stopped (the search keeps
what finished); when none finished, that is the one-line error "too short to train one
candidate".
"""

from __future__ import annotations

import json
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
    """Train by successive halving; the last result of each candidate trained, by key. A
    rung's jobs go to the executor together (one at a time locally, in parallel on Ray)."""
    done: dict[str, Trained] = {}
    alive = list(candidates)
    total_epochs = 0
    for rung, added in enumerate(rung_epochs(epochs)):
        total_epochs += added
        jobs: dict[str, tuple[FitCandidate, TrainJob]] = {}
        for c in alive:
            saved = _load(out, c, rung)
            if saved is not None:
                log(f"{c.key}: rung {rung} done earlier ({saved.top1:.2f}%), skipped")
                done[c.key] = saved
                progress(1)
                continue
            prev = done.get(c.key)
            jobs[c.key] = (c, TrainJob(c.family, c.alpha, c.resolution, data, epochs,
                                       str(out / "runs" / c.key), stop_after=total_epochs))
            log(f"training {c.key}: rung {rung}, {added} epoch(s)"
                + (f" on from {prev.epochs}" if prev else "") + f" of a {epochs}-epoch schedule")

        def finished(job: TrainJob, outcome: TrainOutcome | None, rung: int = rung,
                     total: int = total_epochs) -> None:
            if outcome is None:
                return
            c = next(c for c, j in jobs.values() if j is job)
            done[c.key] = Trained(c, outcome.top1, outcome.checkpoint, total, rung)
            _save(out, done[c.key], outcome.seconds)  # at once: a kill keeps it
            log(f"trained {c.key} to {total} epoch(s): {outcome.top1:.2f}% top-1 "
                f"({outcome.seconds:.0f} s)")
            progress(1)

        if jobs:
            outcomes = executor.run([j for _, j in jobs.values()], deadline=deadline,
                                    on_done=finished)
            if any(o is None for o in outcomes):  # out of time: keep what is trained
                if not done:
                    raise EdgeCNNError(
                        "--time-budget is too short to train one candidate: "
                        f"{next(iter(jobs))} did not finish {added} epoch(s) in time")
                log("time budget reached: the search stops with what is trained")
                return done
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
