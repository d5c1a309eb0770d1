"""The inner loops: one training epoch, one evaluation pass, and what both need.

Shared by `edgecnn train` (loop.py), `finetune` and `evaluate_accuracy` (api.py) and
`edgecnn eval` (evaluate.py). Nothing here writes files.

Reproducibility: an epoch draws everything random from generators seeded by
(seed, epoch, rank) — the batch order, the augmentation, dropout — so a run resumed at
epoch k draws the same numbers as one that never stopped, without replaying RNG state.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgecnn.data import Batches, BatchTransform, ImageDataset
from edgecnn.data.transforms import normalize
from edgecnn.data.view import eval_view
from edgecnn.errors import EdgeCNNError

# Batches timed for the epoch-time estimate (the first one, with its warm-up, left out).
ESTIMATE_BATCHES = 4
# Moving a data set to the GPU once beats copying each batch, up to this size.
DEVICE_DATA_LIMIT = 1 << 30


# ------------------------------------------------------------------------------------------
# Seeds, devices, transforms.


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for (seed, epoch, stream): splitmix64, so nearby inputs look unrelated."""
    mask = (1 << 64) - 1
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB
         + 0x632BE59BD9B4E019) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return (z ^ (z >> 31)) >> 1


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EdgeCNNError("--device cuda asked, but torch sees no CUDA device")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def model_in_chans(model: nn.Module) -> int:
    """Input channels: the zoo config's, else the first convolution's."""
    config = getattr(model, "config", None)
    if isinstance(config, dict) and isinstance(config.get("in_chans"), int):
        return config["in_chans"]
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise EdgeCNNError("cannot tell the model's input channels (no config, no Conv2d)")


def make_transform(
    dataset: ImageDataset, *, resolution: int, in_chans: int, train: bool,
    mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
) -> BatchTransform:
    """The data set's transform; `mean`/`std` (model channels, e.g. a checkpoint's) override
    the data set's own statistics."""
    transform = BatchTransform.for_dataset(dataset, resolution=resolution, in_chans=in_chans,
                                           train=train)
    if (mean is None) != (std is None):
        raise EdgeCNNError("give both mean and std, or neither")
    if mean is not None and std is not None:
        if len(mean) != in_chans or len(std) != in_chans or min(std) <= 0:
            raise EdgeCNNError(f"mean/std need {in_chans} values (one per model input channel) "
                               f"and a positive std, got {list(mean)} / {list(std)}")
        transform.mean, transform.std = tuple(map(float, mean)), tuple(map(float, std))
    return transform


def check_classes(model_classes: int, dataset: ImageDataset, what: str = "the model") -> None:
    if dataset.num_classes != model_classes:
        raise EdgeCNNError(f"{what} has {model_classes} classes, data set {dataset.name} has "
                           f"{dataset.num_classes}")


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only (CPU autocast to bf16 is slower on most CPUs)."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def needs_scaler(device: torch.device, amp: bool) -> bool:
    """fp16 autocast needs loss scaling; bf16 has fp32's range and does not."""
    return device.type == "cuda" and amp and not torch.cuda.is_bf16_supported()


def data_device(dataset: ImageDataset, device: torch.device) -> torch.device | None:
    """Where to keep the uint8 images: on the GPU when they fit comfortably."""
    if device.type == "cuda" and dataset.images.nbytes <= DEVICE_DATA_LIMIT:
        return device
    return None


# ------------------------------------------------------------------------------------------
# Training.


@dataclass
class EpochStats:
    loss: float  # mean over samples
    acc: float  # top-1, fraction
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """tqdm over an epoch's batches, on a terminal only (a log file gets one line per epoch;
    --no-progress: edgecnn.progress.quiet)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        from edgecnn.progress import enabled as progress_on

        self.bar = None
        if enabled and progress_on():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False,
                            dynamic_ncols=True, file=sys.stderr)

    def update(self, loss: float, acc: float, images_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{100 * acc:.2f}%",
                                 img_s=f"{images_per_s:.0f}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_epoch(
    model: nn.Module,
    dataset: ImageDataset,
    transform: BatchTransform,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    device: torch.device,
    label_smoothing: float = 0.0,
    amp: bool = True,
    scaler: torch.amp.GradScaler | None = None,
    rank: int = 0,
    world_size: int = 1,
    reduce: Callable[[Tensor], Tensor] | None = None,
    progress: str | None = None,
    estimate: Callable[[float], None] | None = None,
) -> EpochStats:
    """One pass over `dataset`; `batch_size` is per process. Returns global statistics.

    Batch order comes from generator(epoch_seed(seed, epoch)), the same on every rank (the
    loader shards it); augmentation and dropout from streams that include the rank.
    """
    model.train()
    order = generator(epoch_seed(seed, epoch))
    augment = generator(epoch_seed(seed, epoch, 1 + rank))
    torch.manual_seed(epoch_seed(seed, epoch, 1_000_003 + rank))  # dropout, drop-path
    # drop_last keeps every batch full (BN statistics of a 3-sample batch are noise) and
    # every rank's batches equal; a data set smaller than one batch still trains on one.
    per_rank = -(-len(dataset) // world_size)
    loader = Batches(dataset, batch_size, shuffle=True, generator=order,
                     drop_last=per_rank >= batch_size, rank=rank, world_size=world_size,
                     device=data_device(dataset, device))
    bar = Progress(len(loader), progress or "", enabled=progress is not None)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if estimate is not None and step == ESTIMATE_BATCHES:  # after a warm-up batch
            per_batch = (time.perf_counter() - first) / (ESTIMATE_BATCHES - 1)
            estimate(per_batch * len(loader))
        elif estimate is not None and step == 1:
            first = time.perf_counter()
        x = transform(images.to(device, non_blocking=True), generator=augment)
        y = labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            totals += torch.stack([loss.detach().double() * len(y),
                                   (logits.argmax(1) == y).sum().double(),
                                   torch.tensor(float(len(y)), device=device,
                                                dtype=torch.float64)])
        if bar.bar is not None:  # .item() syncs the GPU: only when someone watches
            seen = totals[2].item()
            bar.update(totals[0].item() / seen, totals[1].item() / seen,
                       seen * world_size / (time.perf_counter() - start))
    bar.close()
    if reduce is not None:
        totals = reduce(totals)
    seconds = time.perf_counter() - start
    loss_sum, correct, count = totals.tolist()
    if not torch.isfinite(torch.tensor(loss_sum)):
        raise EdgeCNNError(f"epoch {epoch}: the loss diverged (nan/inf); lower the learning "
                           f"rate (--lr)")
    return EpochStats(loss_sum / count, correct / count, int(count), seconds)


# ------------------------------------------------------------------------------------------
# Evaluation.


def predict(
    model: nn.Module, dataset: ImageDataset, transform: BatchTransform, *,
    batch_size: int = 256, device: torch.device | None = None, amp: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """(logits float32 (B, K) on the CPU, labels (B,)) batch by batch, in data set order.

    The model sees the runtime's pixels (edgecnn.data.view: each file or array image through
    edgecnn.runtime's Preprocess), normalized with `transform`'s mean/std: the accuracy
    reported here is a device app's.
    """
    device = device or next(model.parameters()).device
    model.eval()
    cfg = transform.config
    view = eval_view(dataset, cfg.resolution, cfg.in_chans)
    loader = Batches(view, batch_size, shuffle=False, generator=None,
                     device=data_device(view, device))
    with torch.inference_mode():
        for images, labels in loader:
            with autocast(device, amp):
                logits = model(normalize(images.to(device), transform.mean, transform.std))
            yield logits.float().cpu(), labels.cpu()


@dataclass
class EvalTotals:
    """Sums over samples, so that ranks can add them up."""

    loss_sum: float
    top1: float
    top5: float
    count: float

    def as_dict(self) -> dict[str, float]:
        n = max(self.count, 1.0)
        return {"loss": self.loss_sum / n, "acc": self.top1 / n, "top5": self.top5 / n,
                "images": int(self.count)}


def evaluate_totals(
    model: nn.Module, dataset: ImageDataset, transform: BatchTransform, *,
    batch_size: int = 256, device: torch.device | None = None, amp: bool = False,
    reduce: Callable[[Tensor], Tensor] | None = None,
) -> EvalTotals:
    """Cross-entropy, top-1 and top-5 counts over `dataset` (top-5 is top-k for k < 5)."""
    totals = torch.zeros(4, dtype=torch.float64)
    for logits, labels in predict(model, dataset, transform, batch_size=batch_size,
                                  device=device, amp=amp):
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices  # (B, k)
        hits = top == labels[:, None]
        totals += torch.tensor([F.cross_entropy(logits, labels, reduction="sum").item(),
                                hits[:, 0].sum().item(), hits.any(1).sum().item(),
                                float(len(labels))], dtype=torch.float64)
    if reduce is not None:
        totals = reduce(totals)
    return EvalTotals(*totals.tolist())
