"""Checkpoints that rebuild their model without the command line that made them.

A checkpoint is a plain dict saved with torch.save and loaded with `weights_only=True`
(tensors, numbers, strings, lists, dicts: loading never executes code):

    format      "edgecnn-checkpoint/1"
    model       {"name", "alpha", "num_classes", "in_chans", "kwargs"}  -> create_model(...)
    resolution  input side the model was trained at
    mean, std   normalization in the model's input channels ([0, 1] pixel units)
    classes     class names (index = logit)
    dataset     data set spec it was trained on ("mnist5k", "imagefolder:/data/x", ...)
    state_dict  weights
    epoch, metrics  last completed epoch and its metrics
    (last.pt only) optimizer, scheduler, rng, train_config: what --resume needs

Writes are atomic: a temporary file in the same directory, fsync, then rename.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_file, file_sha256  # noqa: F401 (callers import it here)
from edgecnn.registry import create_model

FORMAT = "edgecnn-checkpoint/1"
REQUIRED = ("format", "model", "resolution", "mean", "std", "classes", "state_dict")


def save_checkpoint(data: dict[str, Any], path: str | Path) -> Path:
    """Atomically write `data` (must hold the REQUIRED keys) to `path`."""
    path = Path(path)
    data = {"format": FORMAT, **data}
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    # Serialized in memory, then written in one call: torch.save streaming into a file that
    # hits a full disk reports "unexpected pos" and loses the errno; one write keeps it.
    buffer = io.BytesIO()
    torch.save(data, buffer)
    with atomic_file(path) as f:
        f.write(buffer.getbuffer())
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint (weights_only: never executes code)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding code objects
        raise EdgeCNNError(f"{path}: not a readable edgecnn checkpoint "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EdgeCNNError(f"{path}: not an edgecnn checkpoint (format {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise EdgeCNNError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return data


def model_from_checkpoint(data: dict[str, Any], *, source: str = "checkpoint") -> nn.Module:
    """Rebuild the zoo model a checkpoint describes and load its weights."""
    spec = data["model"]
    model = create_model(spec["name"], alpha=spec.get("alpha", 1.0),
                         num_classes=spec["num_classes"], in_chans=spec["in_chans"],
                         **spec.get("kwargs", {}))
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise EdgeCNNError(f"{source}: weights do not fit {spec['name']} "
                           f"({str(exc).splitlines()[0][:120]})") from None
    return model.eval()
