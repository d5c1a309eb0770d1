"""Training: `edgecnn train` runs, and an API the export stage builds on.

    from edgecnn.train import finetune, evaluate_accuracy, TrainConfig, train
    finetune(model, "mnist5k", epochs=2, resolution=32)         # in place, no files
    evaluate_accuracy(model, "mnist5k", resolution=32)           # {"top1", "top5", ...}
    train(TrainConfig(model="lenet5", data="mnist5k", out="runs/lenet5"))  # a full run

Modules, in reading order: config (TrainConfig), optim (parameter groups, warm-up + decay),
engine (one epoch, one evaluation pass), precise_bn (BatchNorm statistics recomputed after
each epoch), api (finetune, evaluate_accuracy), distributed
(torchrun), loop (a run), with rundir (its files), resume (the stored options win),
transfer (--init) and determinism (kernels, RNG state); evaluate (`edgecnn eval`), plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.lazy import lazy_getattr, lazy_names

_LAZY = {
    "edgecnn.train.api": ("finetune", "evaluate_accuracy"),
    "edgecnn.train.config": ("TrainConfig",),
    "edgecnn.train.loop": ("train", "RunResult"),
    "edgecnn.train.evaluate": ("evaluate_checkpoint",),
}

if TYPE_CHECKING:  # pragma: no cover
    from edgecnn.train.api import evaluate_accuracy, finetune
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.evaluate import evaluate_checkpoint
    from edgecnn.train.loop import RunResult, train

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = lazy_names(_LAZY)
