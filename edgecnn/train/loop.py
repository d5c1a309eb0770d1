"""A training run: model, data, epochs, checkpoints, metrics, resume.

    result = train(TrainConfig(model="lenet5", data="mnist5k", out="runs/lenet5", epochs=15))

The run directory and its files: rundir.py. Crash safety: `last.pt` is the commit point of
an epoch and is written first; best.pt and the metrics files follow and are rebuilt from
last.pt on resume, so a SIGKILL at any moment loses at most the epoch in flight. Resuming
keeps the stored options (resume.py) and, with per-epoch seeding (determinism.py), gives the
same weights as a run that never stopped, bit for bit, on the same machine. `--init` starts
from another run's weights with a new classifier (transfer.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn import __version__
from edgecnn.checkpoint import load_checkpoint, save_checkpoint
from edgecnn.data import ImageDataset, load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.registry import create_model, get_spec
from edgecnn.train.config import TrainConfig
from edgecnn.train.determinism import (
    cuda_ids,
    determinism,
    fix_cublas_workspace,
    get_rng,
    set_rng,
)
from edgecnn.train.distributed import DistContext, distributed, shared_outcome
from edgecnn.train.engine import (
    evaluate_totals,
    make_transform,
    needs_scaler,
    train_epoch,
)
from edgecnn.train.optim import build_optimizer, build_scheduler
from edgecnn.train.precise_bn import recompute_bn_stats
from edgecnn.train.resume import resumed_config
from edgecnn.train.rundir import make_dir, prepare_out, write_metrics
from edgecnn.train.transfer import check_init, load_transfer


@dataclass
class RunResult:
    out: Path
    history: list[dict[str, float]]  # one row per epoch (rundir.METRIC_COLUMNS)
    best_epoch: int
    best_val_acc: float
    model: nn.Module  # the final weights (last epoch), eval mode, on the CPU


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    explicit: set[str] | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> RunResult:
    """Run (or resume) `config`. `explicit`: the options the user set, checked against the
    run being resumed (None: every option that is not None). `stop_after`: end after that
    epoch, the schedule still `config.epochs` long, so that a resume goes on along the same
    schedule (edgecnn fit's successive halving gives survivors more of one schedule)."""
    config.validate()
    if resume and force:
        raise EdgeCNNError("--resume continues a run and --force replaces it: pick one")
    fix_cublas_workspace()
    with distributed(config.device) as ctx, determinism(config.deterministic, ctx.device), \
            torch.random.fork_rng(devices=cuda_ids(ctx.device)):
        say = log if ctx.is_main else (lambda _line: None)
        if config.batch_size % ctx.world_size:
            raise EdgeCNNError(f"the global batch {config.batch_size} does not split evenly "
                               f"over {ctx.world_size} processes")
        # Everything that can be wrong with the arguments fails here, before any file is touched.
        data = (load_dataset(config.data, split="train"), load_dataset(config.data, split="val"))
        config, init = _preflight(config)
        created = not Path(config.out).exists()
        try:
            state = shared_outcome(ctx, prepare_out, Path(config.out), resume, force, say)
            if state is not None:
                config, init = resumed_config(config, state, explicit), None
            return _Run(config, ctx, data, init, state, say).run(stop_after)
        except BaseException:
            if created and ctx.is_main:  # a run that failed before writing anything (a full
                with contextlib.suppress(OSError):  # disk, say) leaves no empty directory
                    Path(config.out).rmdir()
            raise


def _preflight(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config with model name, resolution and in_chans settled; the --init checkpoint."""
    spec = get_spec(config.model)
    init = load_checkpoint(config.init) if config.init else None
    if init is not None:
        config = check_init(config, init)
    config = replace(config, model=spec.name, in_chans=config.in_chans or spec.in_chans,
                     resolution=config.resolution or spec.resolution)
    if config.resolution < spec.min_resolution:
        raise EdgeCNNError(f"{spec.name} needs a resolution of at least {spec.min_resolution}, "
                           f"got {config.resolution}")
    return config, init


# ------------------------------------------------------------------------------------------
# The run.


class _Run:
    def __init__(self, config: TrainConfig, ctx: DistContext,
                 data: tuple[ImageDataset, ImageDataset], init: dict[str, Any] | None,
                 state: dict[str, Any] | None, say: Callable[[str], None]) -> None:
        self.config, self.ctx, self.state, self.say = config.resolved(), ctx, state, say
        self.out = Path(config.out)
        self.train_set, self.val_set = data
        torch.manual_seed(config.seed)  # the initial weights
        self.model = self._build_model(init).to(ctx.device)
        self.train_tf = make_transform(self.train_set, resolution=config.resolution,
                                       in_chans=config.in_chans, train=config.augment)
        self.val_tf = make_transform(self.val_set, resolution=config.resolution,
                                     in_chans=config.in_chans, train=False)
        # Each rank evaluates every world_size-th image: no padding, exact global counts.
        self.val_shard = self.val_set.subset(np.arange(ctx.rank, len(self.val_set),
                                                       ctx.world_size))

    def _build_model(self, init: dict[str, Any] | None) -> nn.Module:
        """The model with its weights: from scratch, from --init, or from last.pt."""
        cfg = self.config
        kwargs = (init or self.state or {}).get("model", {}).get("kwargs", {})
        model = create_model(cfg.model, alpha=cfg.alpha, num_classes=self.train_set.num_classes,
                             in_chans=cfg.in_chans, **kwargs)
        if init is not None:
            replaced = load_transfer(model, init["state_dict"], source=str(cfg.init))
            if replaced:
                self.say(f"init from {cfg.init}: new classifier for "
                         f"{self.train_set.num_classes} classes ({', '.join(replaced)})")
        if self.state is not None:
            try:
                model.load_state_dict(self.state["state_dict"])
            except RuntimeError as exc:
                raise EdgeCNNError(f"{self.out / 'last.pt'}: weights do not fit {cfg.model} "
                                   f"({str(exc).splitlines()[0][:120]})") from None
        return model

    def run(self, stop_after: int | None = None) -> RunResult:
        cfg, ctx = self.config, self.ctx
        net = ctx.wrap(self.model)
        per_rank = cfg.batch_size // ctx.world_size
        steps = max(-(-len(self.train_set) // ctx.world_size) // per_rank, 1)
        optimizer = build_optimizer(self.model, cfg.optimizer, cfg.lr, cfg.weight_decay,
                                    cfg.momentum)
        scheduler = build_scheduler(optimizer, epochs=cfg.epochs, steps_per_epoch=steps,
                                    warmup_epochs=cfg.warmup_epochs, kind=cfg.schedule)
        scaler = torch.amp.GradScaler("cuda") if needs_scaler(ctx.device, cfg.amp) else None
        history: list[dict[str, float]] = []
        best_epoch, best_acc = 0, -1.0
        if self.state is not None:
            optimizer.load_state_dict(self.state["optimizer"])
            scheduler.load_state_dict(self.state["scheduler"])
            if scaler is not None and self.state.get("scaler"):
                scaler.load_state_dict(self.state["scaler"])
            set_rng(self.state.get("rng", {}), ctx.device)
            history = list(self.state["history"])
            best_epoch, best_acc = self.state["best"]["epoch"], self.state["best"]["val_acc"]
            if ctx.is_main:
                self._repair_after_kill(history, best_epoch)
            self.say(f"resuming {self.out} after epoch {self.state['epoch']}/{cfg.epochs}")
        elif ctx.is_main:
            make_dir(self.out)
        self._describe(steps)

        for epoch in range(len(history) + 1, min(cfg.epochs, stop_after or cfg.epochs) + 1):
            stats = train_epoch(net, self.train_set, self.train_tf, optimizer, scheduler,
                                batch_size=per_rank, seed=cfg.seed, epoch=epoch,
                                device=ctx.device, label_smoothing=cfg.label_smoothing,
                                amp=cfg.amp, scaler=scaler, rank=ctx.rank,
                                world_size=ctx.world_size, reduce=ctx.all_reduce_sum,
                                progress=f"epoch {epoch}/{cfg.epochs}" if ctx.is_main else None,
                                estimate=self._oversized_warning() if epoch == 1 else None)
            start = time.perf_counter()
            if cfg.precise_bn:  # before evaluating: the held-out score is the trained net's
                recompute_bn_stats(self.model, self.train_set, self.train_tf,
                                   batch_size=per_rank, seed=cfg.seed, epoch=epoch,
                                   device=ctx.device, images=cfg.precise_bn, amp=cfg.amp,
                                   rank=ctx.rank, world_size=ctx.world_size,
                                   reduce=ctx.all_reduce_sum)
            bn_seconds, start = time.perf_counter() - start, time.perf_counter()
            val = evaluate_totals(self.model, self.val_shard, self.val_tf, device=ctx.device,
                                  amp=cfg.amp, reduce=ctx.all_reduce_sum).as_dict()
            row = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], "train_loss": stats.loss,
                   "train_acc": stats.acc, "val_loss": val["loss"], "val_acc": val["acc"],
                   "val_top5": val["top5"], "train_seconds": stats.seconds,
                   "train_images_per_s": stats.images_per_s,
                   "eval_seconds": time.perf_counter() - start, "bn_seconds": bn_seconds}
            history.append(row)
            improved = row["val_acc"] > best_acc
            if improved:
                best_epoch, best_acc = epoch, row["val_acc"]
            if ctx.is_main:
                extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "scaler": scaler.state_dict() if scaler is not None else {},
                         "rng": get_rng(ctx.device), "train_config": cfg.to_dict(),
                         "history": history, "best": {"epoch": best_epoch, "val_acc": best_acc}}
                save_checkpoint({**self._checkpoint(epoch, row), **extra}, self.out / "last.pt")
                if improved:
                    save_checkpoint(self._checkpoint(epoch, row), self.out / "best.pt")
                write_metrics(self.out, history, self._run_info(), best_epoch)
            self.say(_epoch_line(row, cfg.epochs, improved))
        if ctx.is_main:
            from edgecnn.train.plots import plot_curves

            plot_curves(history, self.out / "curves.png", title=self._title())
            self.say(f"best val acc {100 * best_acc:.2f}% at epoch {best_epoch}; "
                     f"{self.out / 'best.pt'}, {self.out / 'last.pt'}, {self.out / 'curves.png'}")
        ctx.barrier()
        return RunResult(self.out, history, best_epoch, best_acc, self.model.cpu().eval())

    # --------------------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        """What rebuilds and uses the model: see edgecnn.checkpoint."""
        config = dict(self.model.config)
        model = {k: config.pop(k) for k in ("name", "alpha", "num_classes", "in_chans")}
        return {"model": {**model, "kwargs": config}, "resolution": self.config.resolution,
                "mean": list(self.train_tf.mean), "std": list(self.train_tf.std),
                "classes": list(self.train_set.classes), "dataset": self.train_set.name,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "epoch": epoch, "metrics": dict(metrics), "edgecnn_version": __version__}

    def _repair_after_kill(self, history: list[dict[str, float]], best_epoch: int) -> None:
        """A kill between last.pt and the files after it: rebuild them from last.pt."""
        best = self.out / "best.pt"
        if best_epoch == len(history):  # last.pt's epoch was the best: best.pt may lag
            stale = not best.exists() or load_checkpoint(best).get("epoch") != best_epoch
            if stale:
                save_checkpoint(self._checkpoint(best_epoch, history[-1]), best)
        write_metrics(self.out, history, self._run_info(), best_epoch)

    def _oversized_warning(self) -> Callable[[float], None] | None:
        """For a resolution over 4x the data's native size (mnist5k at 224): a callback
        that prints one line with the epoch time estimated on the first batches."""
        native = max(self.train_set.images.shape[-2:])
        res = self.config.resolution
        if res <= 4 * native or not self.ctx.is_main:
            return None
        return lambda seconds: self.say(
            f"edgecnn: warning: training at {res} px, {res / native:.0f}x {self.train_set.name}'s "
            f"native {native} px: about {seconds:.0f} s per epoch (measured on the first "
            f"batches); a smaller --resolution trains faster")

    def _run_info(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "dataset": self.train_set.name,
                "train_images": len(self.train_set), "val_images": len(self.val_set),
                "classes": list(self.train_set.classes), "world_size": self.ctx.world_size,
                "device": str(self.ctx.device), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "edgecnn_version": __version__}

    def _title(self) -> str:
        c = self.config
        width = f" alpha {c.alpha:g}" if get_spec(c.model).has_alpha else ""
        return f"{c.model}{width} at {c.resolution} px on {self.train_set.name}"

    def _describe(self, steps: int) -> None:
        c = self.config
        self.say(f"{self._title()}: {len(self.train_set)} train / {len(self.val_set)} val "
                 f"images, {c.epochs} epoch{'' if c.epochs == 1 else 's'} x {steps} steps of "
                 f"{c.batch_size}; {c.optimizer} lr {c.lr:g} wd {c.weight_decay:g}, "
                 f"{c.schedule} after {c.warmup_epochs:g} warm-up "
                 f"epoch{'' if c.warmup_epochs == 1 else 's'}, "
                 f"label smoothing {c.label_smoothing:g}, "
                 + (f"precise BN over {c.precise_bn} images, " if c.precise_bn else "")
                 + f"{'augmented' if c.augment else 'no augmentation'}, seed {c.seed}; "
                 f"{self.ctx.device}"
                 + (f" x {self.ctx.world_size} processes" if self.ctx.active else ""))


def _epoch_line(row: dict[str, float], epochs: int, best: bool) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.2e}  train loss "
            f"{row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%  val loss "
            f"{row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}% top5 "
            f"{100 * row['val_top5']:.2f}%  {row['train_seconds']:.1f}s "
            f"{row['train_images_per_s']:.0f} img/s" + ("  *best" if best else ""))
