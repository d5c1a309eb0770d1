"""What a training run is: one frozen dataclass, validated in one place.

The command line builds a `TrainConfig`; the resolved copy (every default filled in) is
stored in `last.pt`, so `--resume` continues the run exactly as it was started.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from edgecnn.errors import EdgeCNNError

Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "step"]
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
DEVICES = ("auto", "cpu", "cuda")

# Per-optimizer defaults, used where the user gave none (None in the config).
# SGD: lr 0.1 for a batch of 128 (He et al. 2016's CIFAR recipe; Goyal et al. 2017's linear
# scaling rule for other batches is the user's call) and L2 5e-4. AdamW: 2e-3 with decoupled
# decay 0.05 (Loshchilov & Hutter 2019; what DeiT/ConvNeXt-style recipes use).
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 0.1, "weight_decay": 5e-4},
    "adamw": {"lr": 2e-3, "weight_decay": 0.05},
}

# Step decay divides the learning rate by 10 at half and three quarters of the run
# (He et al. 2016 on CIFAR-10: iterations 32k and 48k of 64k).
STEP_MILESTONES = (0.5, 0.75)
STEP_GAMMA = 0.1

# Training images per precise-BN recompute: 16 batches of 128. The mean of 2,048 images is
# within ~2% of a standard deviation of the population's; mnist5k's recompute then costs about
# a sixth of its epoch (a forward pass of half the images, against forward and backward of
# all). pycls uses 8,192 on ImageNet's 1,000 classes; --precise-bn sets any other number.
PRECISE_BN_IMAGES = 2048


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    model: str  # zoo name or import path package.module:callable
    data: str  # data set spec: mnist5k, digits, imagefolder:PATH, ...
    out: str  # run directory: last.pt, best.pt, metrics.csv/json, curves.png
    alpha: float = 1.0  # width multiplier (families whose paper defines one)
    resolution: int | None = None  # None: the model's own (32 for LeNet-5, 224 for MobileNet)
    in_chans: int | None = None  # None: the model's own; gray images are repeated to fit
    epochs: int = 15
    batch_size: int = 128  # the global batch: split across processes under torchrun
    optimizer: Optimizer = "sgd"
    lr: float | None = None  # peak learning rate; None: OPTIMIZER_DEFAULTS
    weight_decay: float | None = None  # None: OPTIMIZER_DEFAULTS. Never on BN/bias/depthwise.
    momentum: float = 0.9  # SGD (Nesterov); AdamW's beta1
    schedule: Schedule = "cosine"
    # Linear warm-up from lr/steps to lr over this many epochs (Goyal et al. 2017) before the
    # decay; it keeps the first large-lr steps from wrecking BN statistics and fresh heads.
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0  # Szegedy et al. 2016; 0.1 is the usual value
    # Precise BN (precise_bn.py): after each epoch, BatchNorm's running statistics are
    # recomputed over this many training images with the epoch's final weights; 0: off (the
    # running averages as training left them). On by default: with a small BN momentum
    # (MobileNet v3's 0.01) and few steps the running averages lag the weights and the
    # evaluated network is not the trained one (10% held out; benchmarks/train/bn_study.md).
    precise_bn: int = PRECISE_BN_IMAGES
    augment: bool = True  # the data set's augmentation (crops, flips where allowed)
    init: str | None = None  # checkpoint to start from (transfer learning)
    seed: int = 0
    device: str = "auto"  # auto: CUDA when available, else CPU
    amp: bool = True  # mixed precision, on CUDA only (bf16 where supported, else fp16)
    deterministic: bool = True  # deterministic CUDA kernels (CPU ones are already)

    def resolved(self) -> TrainConfig:
        """A copy with the per-optimizer defaults filled in (what the run actually uses)."""
        self.validate()
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        return replace(
            self,
            lr=defaults["lr"] if self.lr is None else self.lr,
            weight_decay=defaults["weight_decay"] if self.weight_decay is None
            else self.weight_decay,
        )

    def validate(self) -> None:
        """One-line EdgeCNNError for anything nonsensical (before any file is touched)."""
        _integer("epochs", self.epochs, 1)
        _integer("batch_size", self.batch_size, 1)
        _integer("seed", self.seed, 0)
        _integer("precise_bn", self.precise_bn, 0)
        if self.resolution is not None:
            _integer("resolution", self.resolution, 1)
        if self.in_chans is not None:
            _integer("in_chans", self.in_chans, 1)
        if self.optimizer not in OPTIMIZERS:
            raise EdgeCNNError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                               f"got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise EdgeCNNError(f"schedule must be one of {', '.join(SCHEDULES)}, "
                               f"got {self.schedule!r}")
        if self.device not in DEVICES:
            raise EdgeCNNError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        _number("alpha", self.alpha, low=0.0, low_open=True)
        if self.lr is not None:
            _number("learning rate", self.lr, low=0.0, low_open=True)
        if self.weight_decay is not None:
            _number("weight decay", self.weight_decay, low=0.0)
        _number("momentum", self.momentum, low=0.0, high=1.0)
        _number("warm-up epochs", self.warmup_epochs, low=0.0)
        _number("label smoothing", self.label_smoothing, low=0.0, high=1.0)
        if not self.model or not self.data or not self.out:
            raise EdgeCNNError("model, data and out must be given")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "checkpoint") -> TrainConfig:
        """The config stored in a checkpoint (unknown keys refused: another version's file)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise EdgeCNNError(f"{source}: unknown training options {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise EdgeCNNError(f"{source}: bad training options ({exc})") from None


def _integer(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise EdgeCNNError(f"{name} must be an integer >= {low}, got {value!r}")


def _number(name: str, value: object, *, low: float, high: float | None = None,
            low_open: bool = False) -> None:
    """low <= value (< high): the upper bound is always open (momentum 1 never decays)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (value > low if low_open else value >= low)
          and (high is None or value < high))
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        span = f"in [{low:g}, {high:g})" if high is not None else lo
        raise EdgeCNNError(f"{name} must be {span}, got {value!r}")
