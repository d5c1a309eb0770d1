"""The run directory: what a run writes, and checking it before anything is written.

    last.pt        after every epoch: weights + optimizer/scheduler/RNG state + history
    best.pt        the epoch with the best validation accuracy so far
    metrics.csv    one row per epoch; metrics.json the same plus the run's description
    curves.png     loss and accuracy, train vs validation (at the end)

Every file is written to a temporary name and renamed (edgecnn.fileio); a kill can leave
such a temporary behind, never a half-written run file, and resuming removes them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.checkpoint import load_checkpoint
from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_write

RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5",
                  "train_seconds", "train_images_per_s", "eval_seconds", "bn_seconds")


def prepare_out(out: Path, resume: bool, force: bool,
                say: Callable[[str], None]) -> dict[str, Any] | None:
    """Rank 0: check the run directory; the checkpoint to resume from, or None."""
    if out.exists() and not out.is_dir():
        raise EdgeCNNError(f"{out} exists and is not a directory")
    present = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / "last.pt").exists():
            if present:  # files of a run, but not the one that resumes it
                raise EdgeCNNError(f"{out} holds {', '.join(present)} but no last.pt to resume "
                                   f"from: use --force to replace the run")
            say(f"no run to resume in {out} (no last.pt yet): starting it")
            make_dir(out)
            return None
        state = load_checkpoint(out / "last.pt")
        remove_temporary_files(out)
        for key in ("train_config", "optimizer", "scheduler", "history"):
            if key not in state:
                raise EdgeCNNError(f"{out / 'last.pt'}: not a resumable checkpoint (no {key})")
        return state
    if present and not force:
        raise EdgeCNNError(f"{out} already holds a run ({', '.join(present)}): use --resume to "
                           f"continue it or --force to replace it")
    remove_run_files(out)
    return None


def make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeCNNError(f"cannot create the run directory {out}: {exc.strerror}") from None


def remove_run_files(out: Path) -> None:
    make_dir(out)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    remove_temporary_files(out)


def remove_temporary_files(out: Path) -> None:
    """Half-written temporaries a kill left behind (the real files are intact)."""
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def write_metrics(out: Path, history: list[dict[str, float]], run: dict[str, Any],
                  best_epoch: int) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(out / "metrics.csv", text.getvalue().encode())
    best = next((row for row in history if row["epoch"] == best_epoch), None)
    doc = {"run": run, "best_epoch": best_epoch,
           "best_val_acc": best["val_acc"] if best else None, "epochs": history}
    atomic_write(out / "metrics.json", (json.dumps(doc, indent=2) + "\n").encode())
