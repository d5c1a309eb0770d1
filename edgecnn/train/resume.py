"""Resuming a run: the options stored in last.pt win, and a conflicting one is refused.

A resumed run continues exactly as it was started, so every option the user sets again must
match the stored one; only where it runs may change (RESUMABLE_CHANGES).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.registry import get_spec
from edgecnn.train.config import TrainConfig

# Options that may change when a run is resumed (where it runs, not what it computes).
RESUMABLE_CHANGES = ("out", "device")


def resumed_config(given: TrainConfig, state: dict[str, Any],
                   explicit: set[str] | None) -> TrainConfig:
    """The stored config, with `out`/`device` from the command line; conflicts refused.
    `explicit`: the options the user set (None: every option that is not None)."""
    stored = TrainConfig.from_dict(state["train_config"], source=f"{given.out}/last.pt")
    for f in fields(TrainConfig):
        mine, theirs = getattr(given, f.name), getattr(stored, f.name)
        asked = f.name in explicit if explicit is not None else mine is not None
        if f.name == "model":
            mine, theirs = get_spec(mine).name, get_spec(theirs).name
        if asked and f.name == "epochs" and mine != theirs:
            raise EdgeCNNError(
                f"{given.out} holds a run planned for {theirs} epochs (its learning-rate "
                f"schedule ends there), not {mine}: --resume finishes it as planned; to train "
                f"longer, start a new run from its weights: --init {given.out}/best.pt "
                f"--epochs N --out NEW_DIR")
        if asked and f.name not in RESUMABLE_CHANGES and mine != theirs:
            raise EdgeCNNError(f"{given.out} holds a run with {f.name}={theirs!r}, not {mine!r}: "
                               f"--resume continues a run as it was started")
    return replace(stored, out=given.out, device=given.device)
