"""Reproducible runs: deterministic CUDA kernels, and the RNG state a checkpoint carries.

Each epoch seeds its own generators from (seed, epoch) (see engine.train_epoch), so a
resumed run draws the same batches, crops and dropout masks as one that never stopped; what
is left is making the kernels themselves deterministic where they are not.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def determinism(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the run on CUDA, the previous settings restored after.

    Only CUDA needs it (atomics in cuDNN/cuBLAS backward passes); the CPU kernels are
    deterministic for a fixed thread count already (the kill-and-resume test checks it), and
    torch.use_deterministic_algorithms costs ~2 s of imports there.
    """
    if not enabled or device.type != "cuda":
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    # warn_only: an op without a deterministic kernel warns instead of stopping the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def fix_cublas_workspace() -> None:
    """cuBLAS is deterministic only with a fixed workspace; must be set before CUDA starts."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def cuda_ids(device: torch.device) -> list[int]:
    """The devices whose RNG torch.random.fork_rng must save and restore."""
    return [device.index or 0] if device.type == "cuda" else []


def get_rng(device: torch.device) -> dict[str, Any]:
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_rng(rng: dict[str, Any], device: torch.device) -> None:
    """Restored for completeness: each epoch reseeds from (seed, epoch) anyway."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)
