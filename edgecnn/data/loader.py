"""Batches straight from the in-memory arrays: one index_select per batch, no per-sample Python.

    g = torch.Generator().manual_seed(seed + epoch)    # the same seed on every rank
    for images, labels in Batches(ds, 128, shuffle=True, generator=g, rank=r, world_size=n):
        x = transform(images.to(device), generator=aug_gen)

Distributed: every rank draws the same permutation from its identically seeded generator,
pads it by repeating its head until it divides by world_size (as torch's
DistributedSampler does), and takes positions rank, rank + world_size, ... so that every
rank gets the same number of samples and batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from edgecnn.data.datasets import ImageDataset
from edgecnn.errors import EdgeCNNError


class Batches:
    """An iterable of (uint8 images (B, C, H, W), int64 labels (B,)) with a length.

    The order is drawn when the object is made, so the generator's state afterwards does
    not depend on how far the batches are consumed; iterating twice repeats the order.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str | None = None,
    ) -> None:
        if batch_size < 1:
            raise EdgeCNNError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise EdgeCNNError(f"rank {rank} is outside world_size {world_size}")
        if shuffle and generator is None:
            raise ValueError("shuffle=True needs a seeded torch.Generator (reproducible runs)")
        n = len(dataset)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if world_size > 1:
            total = math.ceil(n / world_size) * world_size
            order = torch.cat([order, order.repeat(math.ceil(total / n))[: total - n]])
            order = order[rank::world_size]
        self.indices = order  # (n_rank,) int64, this rank's samples in order
        self.batch_size = batch_size
        self.drop_last = drop_last
        # Shared memory with the dataset's numpy arrays: nothing is copied until a batch.
        self.images: Tensor = torch.from_numpy(dataset.images)
        self.labels: Tensor = torch.from_numpy(dataset.labels)
        if device is not None:
            self.images, self.labels = self.images.to(device), self.labels.to(device)
            self.indices = self.indices.to(device)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(len(self)):
            idx = self.indices[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.images.index_select(0, idx), self.labels.index_select(0, idx)

