"""Python API for other stages: fine-tune a module in place, measure its accuracy.

    from edgecnn.train import finetune, evaluate_accuracy
    finetune(pruned, "mnist5k", epochs=2, resolution=32, lr=0.01)
    evaluate_accuracy(pruned, "mnist5k", resolution=32, mean=ckpt["mean"], std=ckpt["std"])
    # {"top1": 0.981, "top5": 0.999, "loss": 0.061, "images": 1000}

Neither writes files; both work on any nn.Module taking (B, C, H, W) images (a pruned zoo
model, a QAT-prepared one), on the device its parameters live on. The caller's global RNG
state is left as it was.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.data import load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.train.config import OPTIMIZER_DEFAULTS, OPTIMIZERS, PRECISE_BN_IMAGES, SCHEDULES
from edgecnn.train.engine import (
    EvalTotals,
    check_classes,
    evaluate_totals,
    make_transform,
    model_in_chans,
    needs_scaler,
    train_epoch,
)
from edgecnn.train.optim import build_optimizer, build_scheduler
from edgecnn.train.precise_bn import recompute_bn_stats


def finetune(
    model: nn.Module,
    data: str,
    *,
    epochs: int,
    resolution: int,
    lr: float = 0.01,
    batch_size: int = 128,
    seed: int = 0,
    optimizer: str = "sgd",
    weight_decay: float | None = None,
    momentum: float = 0.9,
    schedule: str = "cosine",
    warmup_epochs: float = 0.0,
    label_smoothing: float = 0.0,
    augment: bool = True,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    amp: bool = True,
    progress: bool = False,
    precise_bn: int = PRECISE_BN_IMAGES,
) -> nn.Module:
    """Train `model` in place on the train split of `data` and return it in eval mode.

    The defaults suit recovering a pruned or quantization-prepared network: SGD with
    Nesterov momentum at a tenth of the from-scratch learning rate, cosine to zero, no
    warm-up (the weights are already good). `mean`/`std` (model channels, e.g. from the
    checkpoint) keep the normalization the model was trained with; None uses the data
    set's. Seeded: the same call on the same device gives the same weights. `precise_bn`:
    training images BatchNorm's running statistics are recomputed over at the end, with the
    final weights, as `edgecnn train` does after each epoch (train/precise_bn.py); 0: not.
    """
    _check_finetune_args(epochs, resolution, lr, batch_size, seed, optimizer, schedule,
                         weight_decay, momentum, warmup_epochs, label_smoothing)
    device = _device_of(model)
    dataset = load_dataset(data, split="train")
    transform = make_transform(dataset, resolution=resolution, in_chans=model_in_chans(model),
                               train=augment, mean=mean, std=std)
    _check_output_classes(model, dataset, make_transform(
        dataset, resolution=resolution, in_chans=model_in_chans(model), train=False), device)
    decay = OPTIMIZER_DEFAULTS[optimizer]["weight_decay"] if weight_decay is None \
        else weight_decay
    opt = build_optimizer(model, optimizer, lr, decay, momentum)
    steps = max(len(dataset) // batch_size, 1)
    sched = build_scheduler(opt, epochs=epochs, steps_per_epoch=steps,
                            warmup_epochs=warmup_epochs, kind=schedule)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler(device, amp) else None
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the caller's RNG state is untouched
        for epoch in range(1, epochs + 1):
            train_epoch(model, dataset, transform, opt, sched, batch_size=batch_size, seed=seed,
                        epoch=epoch, device=device, label_smoothing=label_smoothing, amp=amp,
                        scaler=scaler, progress=f"finetune {epoch}/{epochs}" if progress
                        else None)
        if precise_bn:
            recompute_bn_stats(model, dataset, transform, batch_size=batch_size, seed=seed,
                               epoch=epochs, device=device, images=precise_bn, amp=amp)
    return model.eval()


def evaluate_accuracy(
    model: nn.Module,
    data: str,
    *,
    resolution: int,
    split: str = "val",
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (fractions in [0, 1]), mean cross-entropy and image count on
    the held-out split of `data`. The model's train/eval mode is restored afterwards."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise EdgeCNNError(f"resolution must be a positive integer, got {resolution!r}")
    device = _device_of(model)
    dataset = load_dataset(data, split=split)
    transform = make_transform(dataset, resolution=resolution, in_chans=model_in_chans(model),
                               train=False, mean=mean, std=std)
    _check_output_classes(model, dataset, transform, device)
    was_training = model.training
    try:
        totals: EvalTotals = evaluate_totals(model, dataset, transform, batch_size=batch_size,
                                             device=device)
    finally:
        model.train(was_training)
    result = totals.as_dict()
    return {"top1": result["acc"], "top5": result["top5"], "loss": result["loss"],
            "images": result["images"]}


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    if param is None:
        raise EdgeCNNError("the model has no parameters")
    return param.device


def _check_output_classes(model: nn.Module, dataset, transform, device: torch.device) -> None:
    """One forward of two images in eval mode: logits must have one column per class."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x = transform(torch.from_numpy(dataset.images[:2]).to(device))
            outputs = model(x).shape[-1]
    finally:
        model.train(was_training)
    check_classes(outputs, dataset)


def _check_finetune_args(epochs: int, resolution: int, lr: float, batch_size: int, seed: int,
                         optimizer: str, schedule: str, weight_decay: float | None,
                         momentum: float, warmup_epochs: float, label_smoothing: float) -> None:
    from edgecnn.train.config import TrainConfig

    if optimizer not in OPTIMIZERS or schedule not in SCHEDULES:
        raise EdgeCNNError(f"optimizer must be one of {OPTIMIZERS} and schedule one of "
                           f"{SCHEDULES}, got {optimizer!r}, {schedule!r}")
    # The same checks as a training run, in one place.
    TrainConfig(model="-", data="-", out="-", epochs=epochs, resolution=resolution, lr=lr,
                batch_size=batch_size, seed=seed, optimizer=optimizer,  # type: ignore[arg-type]
                schedule=schedule, weight_decay=weight_decay,  # type: ignore[arg-type]
                momentum=momentum, warmup_epochs=warmup_epochs,
                label_smoothing=label_smoothing).validate()
