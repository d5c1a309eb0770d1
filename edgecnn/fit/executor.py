"""Where a candidate trains: its own process, one at a time (two cores train one model at a
time best), through `edgecnn train`'s API, so its training stays torchrun-capable and a
crash, a leak or a kill of one candidate is that candidate's alone.

    result = LocalExecutor().train(TrainJob(candidate, "mnist5k", epochs=2, out=run_dir))

A job that outlives its time limit is stopped and reported as such (None), which is how
`--time-budget` is kept. Latency is never measured here: only on the device. `RayExecutor`
(edgecnn[ray]) runs a rung's jobs in parallel on a Ray cluster instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class TrainJob:
    family: str
    alpha: float
    resolution: int
    data: str
    epochs: int
    out: str  # the run directory (best.pt, last.pt)
    stop_after: int | None = None  # a successive-halving rung: the schedule's first epochs
    seed: int = 0


@dataclass(frozen=True)
class TrainOutcome:
    top1: float  # held-out top-1, percent (the val split of the data)
    checkpoint: str  # best.pt
    seconds: float


def run_job(job: TrainJob, log: Any = print) -> TrainOutcome:
    """Train one job in this process (what the child process runs)."""
    from edgecnn.train import TrainConfig, train

    t0 = time.perf_counter()
    out = Path(job.out)
    # A later rung (or a killed one) goes on from last.pt along the same schedule: one
    # cosine over `epochs`, not a fresh one per rung restarting at the full learning rate.
    resume = (out / "last.pt").is_file()
    config = TrainConfig(model=job.family, data=job.data, out=job.out, alpha=job.alpha,
                         resolution=job.resolution, epochs=job.epochs, seed=job.seed)
    result = train(config, resume=resume, force=not resume and out.exists(),
                   explicit=set() if resume else None, log=log, stop_after=job.stop_after)
    return TrainOutcome(round(100 * result.best_val_acc, 3), str(out / "best.pt"),
                        round(time.perf_counter() - t0, 2))


OnDone = Callable[[TrainJob, "TrainOutcome | None"], None]


class LocalExecutor:
    """Each job in a child process of this Python, one at a time."""

    def run(self, jobs: list[TrainJob], *, deadline: float | None,
            on_done: OnDone) -> list[TrainOutcome | None]:
        """Every job in turn, `on_done` told as each ends; None for a job stopped or never
        started at the deadline (time.monotonic())."""
        outcomes: list[TrainOutcome | None] = []
        for job in jobs:
            left = None if deadline is None else deadline - time.monotonic()
            outcome = None if left is not None and left <= 0 else \
                self.train(job, timeout_s=left)
            on_done(job, outcome)
            outcomes.append(outcome)
        return outcomes

    def train(self, job: TrainJob, *, timeout_s: float | None = None) -> TrainOutcome | None:
        """The outcome, or None when the job ran out of time (the child is stopped)."""
        Path(job.out).mkdir(parents=True, exist_ok=True)
        result = Path(job.out) / "outcome.json"
        result.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "edgecnn.fit.executor", json.dumps(asdict(job)),
               str(result)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None
        except BaseException:  # Ctrl-C: the child goes too
            proc.kill()
            proc.communicate()
            raise
        if proc.returncode != 0 or not result.is_file():
            last = [line for line in (err or "").splitlines() if line.strip()]
            why = last[-1].removeprefix("edgecnn: error: ") if last \
                else f"exit status {proc.returncode}"
            raise EdgeCNNError(f"training {Path(job.out).parent.name} failed: {why}")
        return TrainOutcome(**json.loads(result.read_text(encoding="utf-8")))


class RayExecutor:
    """A rung's jobs as Ray tasks, in parallel across the cluster's CPUs (`pip install
    "edgecnn[ray]"`): when candidate training outgrows one machine. Each task runs the same
    `run_job` in a Ray worker process, so the run directories (on storage every node sees)
    and the results are the local executor's. Latency is never measured on a worker.

    address: None starts a local Ray instance (`num_cpus` of this machine's); "auto" or
    "ray://host:10001" joins a running cluster."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 cpus_per_job: int = 1) -> None:
        try:
            import ray
        except ImportError:
            raise EdgeCNNError('the Ray executor needs Ray: pip install "edgecnn[ray]"') \
                from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=num_cpus if address is None else None,
                     include_dashboard=False, log_to_driver=False)
        root = str(Path(__file__).resolve().parents[2])  # this edgecnn, on every worker
        self.task = ray.remote(num_cpus=cpus_per_job, max_retries=0)(_ray_job).options(
            runtime_env={"env_vars": {"PYTHONPATH": root}})

    def run(self, jobs: list[TrainJob], *, deadline: float | None,
            on_done: OnDone) -> list[TrainOutcome | None]:
        ray = self.ray
        refs = {self.task.remote(asdict(job)): i for i, job in enumerate(jobs)}
        outcomes: list[TrainOutcome | None] = [None] * len(jobs)
        waiting = list(refs)
        while waiting:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=left)
            if not ready:  # the deadline: the rest are stopped
                for ref in waiting:
                    ray.cancel(ref, force=True)
                for ref in waiting:
                    on_done(jobs[refs[ref]], None)
                break
            i = refs[ready[0]]
            try:
                outcomes[i] = TrainOutcome(**ray.get(ready[0]))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, EdgeCNNError) else exc
                raise EdgeCNNError(f"training {Path(jobs[i].out).name} failed on Ray: "
                                   f"{str(cause).splitlines()[-1]}") from None
            on_done(jobs[i], outcomes[i])
        return outcomes


def _ray_job(job: dict[str, Any]) -> dict[str, Any]:
    return asdict(run_job(TrainJob(**job), log=lambda line: None))


def _child(argv: list[str]) -> int:
    from edgecnn.fileio import atomic_write

    job = TrainJob(**json.loads(argv[0]))
    try:
        outcome = run_job(job, log=lambda line: None)
    except EdgeCNNError as exc:
        print(f"edgecnn: error: {exc}", file=sys.stderr)
        return 1
    atomic_write(argv[1], json.dumps(asdict(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
