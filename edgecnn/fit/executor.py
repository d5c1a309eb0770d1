"""Where a candidate trains: its own process, one at a time (two cores train one model at a
time best), through `edgecnn train`'s API, so its training stays torchrun-capable and a
crash, a leak or a kill of one candidate is that candidate's alone.

    result = LocalExecutor().train(TrainJob(candidate, "mnist5k", epochs=2, out=run_dir))

A job that outlives its time limit is stopped and reported as such (None), which is how
`--time-budget` is kept. Latency is never measured here: only on the device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    init: str | None = None  # continue from this checkpoint (a successive-halving rung)
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
    resume = (out / "last.pt").is_file()  # a killed rung continues where it stopped
    config = TrainConfig(model=job.family, data=job.data, out=job.out, alpha=job.alpha,
                         resolution=job.resolution, epochs=job.epochs, init=job.init,
                         seed=job.seed,
                         # a rung continues trained weights: no warm-up from a tiny lr
                         warmup_epochs=0.0 if job.init else 1.0)
    result = train(config, resume=resume, force=not resume and out.exists(),
                   explicit=set() if resume else None, log=log)
    return TrainOutcome(round(100 * result.best_val_acc, 3), str(out / "best.pt"),
                        round(time.perf_counter() - t0, 2))


class LocalExecutor:
    """Each job in a child process of this Python, one at a time."""

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
            raise EdgeCNNError(f"training {Path(job.out).name} failed: "
                               f"{last[-1] if last else f'exit {proc.returncode}'}")
        return TrainOutcome(**json.loads(result.read_text(encoding="utf-8")))


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
