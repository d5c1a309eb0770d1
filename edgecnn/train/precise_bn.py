"""Precise BatchNorm: recompute the running statistics over training data after an epoch.

BatchNorm normalizes with the batch's statistics in training and with running averages in
evaluation. The running averages are an exponential moving average with `momentum`: with
MobileNet v3's 0.01 (the paper's TensorFlow default, kept by torchvision) they average the
last ~100 steps, so on a short run (mnist5k: 31 steps an epoch) they describe weights from
epochs ago and the evaluated network is not the trained one (benchmarks/train/bn_study.md:
96.3% on the training batches, 15.7% held out, 97.2% after the recompute). Recomputing them
with the final weights over a pass of training images is "precise BN" (Wu & Johnson,
"Rethinking 'Batch' in BatchNorm",
arXiv:2105.07576; pycls and detectron2's PreciseBN hook): the running mean becomes the mean
of the batch means and the running variance the mean of the batch variances, which is what
the weights were trained against. It changes no weight and no architecture field (momentum
is only used while training, never at inference), so the paper's model is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from edgecnn.data import Batches, BatchTransform, ImageDataset
from edgecnn.train.config import PRECISE_BN_IMAGES
from edgecnn.train.engine import autocast, data_device, epoch_seed, generator

# A stream of epoch_seed() of its own: the recompute's batches and augmentation do not
# shift the training epoch's draws (resume stays bit-exact).
_STREAM = 7_000_003


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(
    model: nn.Module,
    dataset: ImageDataset,
    transform: BatchTransform,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    device: torch.device,
    images: int = PRECISE_BN_IMAGES,
    amp: bool = True,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Set every BatchNorm's running mean/var to the average of its batch statistics over
    up to `images` training images (augmented, as training saw them; `batch_size` per
    process, full batches only). Weights are untouched; the model's mode is restored.
    Under DDP every rank recomputes on its shard and `reduce` (a sum) averages the result.
    Returns the number of batches used on this rank (0: no BatchNorm, nothing done)."""
    norms = batchnorms(model)
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch weighs the same
    per_rank = -(-len(dataset) // world_size)
    loader = Batches(dataset, batch_size, shuffle=True,
                     generator=generator(epoch_seed(seed, epoch, _STREAM)),
                     drop_last=per_rank >= batch_size, rank=rank, world_size=world_size,
                     device=data_device(dataset, device))
    augment = generator(epoch_seed(seed, epoch, _STREAM + 1 + rank))
    torch.manual_seed(epoch_seed(seed, epoch, _STREAM + 1_000_003 + rank))  # dropout
    limit = max(images // (batch_size * world_size), 1)
    used = 0
    model.train()
    try:
        for batch, _labels in loader:
            if used == limit:
                break
            with autocast(device, amp):
                model(transform(batch.to(device, non_blocking=True), generator=augment))
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if reduce is not None and world_size > 1:
        for m in norms:
            stats = torch.cat([m.running_mean, m.running_var]).double()
            mean, var = (reduce(stats) / world_size).to(m.running_mean.dtype).chunk(2)
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
    return used
