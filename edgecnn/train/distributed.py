"""Data-parallel training under torchrun: DistributedDataParallel, NCCL on GPUs, gloo on CPUs.

    torchrun --nproc_per_node 4 -m edgecnn train mobilenet --data mnist5k ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT for the rendezvous);
without them this is a one-process run and every call here is a no-op. Each rank trains on
its shard of the same seeded permutation (edgecnn.data.batches does the sharding), DDP
averages the gradients, sums of losses and counts are all-reduced, and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.train.engine import pick_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        """Sum over ranks (a copy); NCCL needs the tensor on this rank's GPU."""
        if not self.active:
            return tensor
        work = tensor.detach().to(self.device, copy=True)
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        return work.to(tensor.device)

    def broadcast_from_main(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (checkpoint dicts, error messages)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP around `model` (already on self.device); it broadcasts rank 0's weights."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def world_from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise EdgeCNNError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)"
                           ) from None
    if world < 1 or not 0 <= rank < world:
        raise EdgeCNNError(f"RANK {rank} is outside WORLD_SIZE {world}")
    return rank, world, local


@contextlib.contextmanager
def distributed(device_name: str = "auto") -> Iterator[DistContext]:
    """The process group for the duration of a run (torn down even when the run fails)."""
    rank, world, local = world_from_env()
    device = pick_device(device_name, local)
    if world == 1:
        yield DistContext(device=device)
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        yield DistContext(rank, world, local, device)
        # every rank past its last collective before the group goes: a rank that tore it
        # down early once left the other to abort at exit (gloo, "terminate called without
        # an active exception"). Not after a failure: the other rank may be gone.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def shared_outcome(ctx: DistContext, fn: Any, *args: Any) -> Any:
    """Run `fn(*args)` on rank 0 and hand its result, or its EdgeCNNError, to every rank.

    Rank 0 alone touches the run directory; the other ranks must stop on its errors too
    instead of waiting for it forever in the next collective.
    """
    outcome: tuple[str, Any]
    if ctx.is_main:
        try:
            outcome = ("ok", fn(*args))
        except EdgeCNNError as exc:
            outcome = ("error", str(exc))
    else:
        outcome = ("ok", None)
    try:
        outcome = ctx.broadcast_from_main(outcome)
    except pickle.PicklingError as exc:  # pragma: no cover - checkpoints hold plain data
        raise EdgeCNNError(f"cannot share the run state across ranks: {exc}") from None
    if outcome[0] == "error":
        raise EdgeCNNError(outcome[1])
    return outcome[1]
