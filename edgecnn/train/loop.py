"""A training run: model, data, epochs, checkpoints, metrics, resume.

    result = train(TrainConfig(model="lenet5", data="mnist5k", out="runs/lenet5", epochs=15))

The run directory:
    last.pt        after every epoch: weights + optimizer/scheduler/RNG state + history
    best.pt        the epoch with the best validation accuracy so far
    metrics.csv    one row per epoch; metrics.json the same plus the run's description
    curves.png     loss and accuracy, train vs validation (at the end)

Crash safety: every file is written to a temporary name and renamed. `last.pt` is the commit
point of an epoch and is written first; best.pt and the metrics files follow and are
rebuilt from last.pt on resume, so a SIGKILL at any moment loses at most the epoch in
flight. Each epoch seeds its own generators from (seed, epoch), so the resumed run draws the
same batches, crops and dropout masks as one that never stopped: same weights, bit for bit,
on the same machine.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn import __version__
from edgecnn.checkpoint import load_checkpoint, save_checkpoint
from edgecnn.data import ImageDataset, load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_write
from edgecnn.registry import create_model, get_spec
from edgecnn.train.config import TrainConfig
from edgecnn.train.distributed import DistContext, distributed, shared_outcome
from edgecnn.train.engine import (
    evaluate_totals,
    make_transform,
    needs_scaler,
    train_epoch,
)
from edgecnn.train.optim import build_optimizer, build_scheduler

RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png")
METRIC_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5",
                  "train_seconds", "train_images_per_s", "eval_seconds")
# Options that may change when a run is resumed (where it runs, not what it computes).
RESUMABLE_CHANGES = ("out", "device")


@dataclass
class RunResult:
    out: Path
    history: list[dict[str, float]]  # one row per epoch (METRIC_COLUMNS)
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
) -> RunResult:
    """Run (or resume) `config`. `explicit`: the options the user set, checked against the
    run being resumed (None: every option that is not None)."""
    config.validate()
    if resume and force:
        raise EdgeCNNError("--resume continues a run and --force replaces it: pick one")
    # cuBLAS is deterministic only with a fixed workspace; must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with distributed(config.device) as ctx, _determinism(config.deterministic, ctx.device), \
            torch.random.fork_rng(devices=_cuda_ids(ctx.device)):
        say = log if ctx.is_main else (lambda _line: None)
        if config.batch_size % ctx.world_size:
            raise EdgeCNNError(f"the global batch {config.batch_size} does not split evenly "
                               f"over {ctx.world_size} processes")
        # Everything that can be wrong with the arguments fails here, before any file is touched.
        data = (load_dataset(config.data, split="train"), load_dataset(config.data, split="val"))
        config, init = _preflight(config)
        created = not Path(config.out).exists()
        try:
            state = shared_outcome(ctx, _prepare_out, config, resume, force, say)
            if state is not None:
                config, init = _resumed_config(config, state, explicit), None
            return _Run(config, ctx, data, init, state, say).run()
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
        config = _check_init(config, init)
    config = replace(config, model=spec.name, in_chans=config.in_chans or spec.in_chans,
                     resolution=config.resolution or spec.resolution)
    if config.resolution < spec.min_resolution:
        raise EdgeCNNError(f"{spec.name} needs a resolution of at least {spec.min_resolution}, "
                           f"got {config.resolution}")
    return config, init


# ------------------------------------------------------------------------------------------
# The run directory.


def _prepare_out(config: TrainConfig, resume: bool, force: bool,
                 say: Callable[[str], None]) -> dict[str, Any] | None:
    """Rank 0: check the run directory; the checkpoint to resume from, or None."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise EdgeCNNError(f"{out} exists and is not a directory")
    present = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        if not (out / "last.pt").exists():
            if present:  # files of a run, but not the one that resumes it
                raise EdgeCNNError(f"{out} holds {', '.join(present)} but no last.pt to resume "
                                   f"from: use --force to replace the run")
            say(f"no run to resume in {out} (no last.pt yet): starting it")
            _make_dir(out)
            return None
        state = load_checkpoint(out / "last.pt")
        _remove_temporary_files(out)
        for key in ("train_config", "optimizer", "scheduler", "history"):
            if key not in state:
                raise EdgeCNNError(f"{out / 'last.pt'}: not a resumable checkpoint (no {key})")
        return state
    if present and not force:
        raise EdgeCNNError(f"{out} already holds a run ({', '.join(present)}): use --resume to "
                           f"continue it or --force to replace it")
    _remove_run_files(out)
    return None


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeCNNError(f"cannot create the run directory {out}: {exc.strerror}") from None


def _remove_run_files(out: Path) -> None:
    _make_dir(out)
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    _remove_temporary_files(out)


def _remove_temporary_files(out: Path) -> None:
    """Half-written temporaries a kill left behind (the real files are intact)."""
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _resumed_config(given: TrainConfig, state: dict[str, Any],
                    explicit: set[str] | None) -> TrainConfig:
    """The stored config, with `out`/`device` from the command line; conflicts refused."""
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


def write_metrics(out: Path, history: list[dict[str, float]], run: dict[str, Any],
                  best_epoch: int) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(out / "metrics.csv", text.getvalue().encode())
    best = next((row for row in history if row["epoch"] == best_epoch), None)
    doc = {"run": run, "best_epoch": best_epoch,
           "best_val_acc": best["val_acc"] if best else None, "epochs": history}
    atomic_write(out / "metrics.json", (json.dumps(doc, indent=2) + "\n").encode())


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

    def run(self) -> RunResult:
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
            _set_rng(self.state.get("rng", {}), ctx.device)
            history = list(self.state["history"])
            best_epoch, best_acc = self.state["best"]["epoch"], self.state["best"]["val_acc"]
            if ctx.is_main:
                self._repair_after_kill(history, best_epoch)
            self.say(f"resuming {self.out} after epoch {self.state['epoch']}/{cfg.epochs}")
        elif ctx.is_main:
            _make_dir(self.out)
        self._describe(steps)

        for epoch in range(len(history) + 1, cfg.epochs + 1):
            stats = train_epoch(net, self.train_set, self.train_tf, optimizer, scheduler,
                                batch_size=per_rank, seed=cfg.seed, epoch=epoch,
                                device=ctx.device, label_smoothing=cfg.label_smoothing,
                                amp=cfg.amp, scaler=scaler, rank=ctx.rank,
                                world_size=ctx.world_size, reduce=ctx.all_reduce_sum,
                                progress=f"epoch {epoch}/{cfg.epochs}" if ctx.is_main else None,
                                estimate=self._oversized_warning() if epoch == 1 else None)
            start = time.perf_counter()
            val = evaluate_totals(self.model, self.val_shard, self.val_tf, device=ctx.device,
                                  amp=cfg.amp, reduce=ctx.all_reduce_sum).as_dict()
            row = {"epoch": epoch, "lr": scheduler.get_last_lr()[0], "train_loss": stats.loss,
                   "train_acc": stats.acc, "val_loss": val["loss"], "val_acc": val["acc"],
                   "val_top5": val["top5"], "train_seconds": stats.seconds,
                   "train_images_per_s": stats.images_per_s, "eval_seconds": time.perf_counter() - start}
            history.append(row)
            improved = row["val_acc"] > best_acc
            if improved:
                best_epoch, best_acc = epoch, row["val_acc"]
            if ctx.is_main:
                extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "scaler": scaler.state_dict() if scaler is not None else {},
                         "rng": _get_rng(ctx.device), "train_config": cfg.to_dict(),
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
                 f"images, {c.epochs} epochs x {steps} steps of {c.batch_size}; {c.optimizer} "
                 f"lr {c.lr:g} wd {c.weight_decay:g}, {c.schedule} after {c.warmup_epochs:g} "
                 f"warm-up epochs, label smoothing {c.label_smoothing:g}, "
                 f"{'augmented' if c.augment else 'no augmentation'}, seed {c.seed}; "
                 f"{self.ctx.device}"
                 + (f" x {self.ctx.world_size} processes" if self.ctx.active else ""))


def _check_init(config: TrainConfig, init: dict[str, Any]) -> TrainConfig:
    """--init: the checkpoint must hold the same architecture; it fills resolution/in_chans."""
    held = init["model"]
    if get_spec(held["name"]).name != get_spec(config.model).name:
        raise EdgeCNNError(f"{config.init} holds a {held['name']}, not a {config.model}")
    if float(held.get("alpha", 1.0)) != config.alpha:
        raise EdgeCNNError(f"{config.init} holds alpha {held.get('alpha')}, "
                           f"not {config.alpha:g}")
    if config.in_chans is not None and config.in_chans != held["in_chans"]:
        raise EdgeCNNError(f"{config.init} takes {held['in_chans']} input channels, "
                           f"not {config.in_chans}")
    return replace(config, in_chans=held["in_chans"],
                   resolution=config.resolution or int(init["resolution"]))


def load_transfer(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> list[str]:
    """Load `state` into `model`, leaving out the tensors whose shape depends on the number of
    classes (the classifier). Returns the names left at their fresh initialization."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise EdgeCNNError(f"{source}: weights do not fit {model.config['name']} "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    replaced = [k for k in own if own[k].shape != state[k].shape]
    heads = {k for k in replaced if own[k].shape[:1] == (model.config["num_classes"],)}
    if set(replaced) - heads:  # a shape that does not come from the class count
        bad = sorted(set(replaced) - heads)[0]
        raise EdgeCNNError(f"{source}: {bad} is {tuple(state[bad].shape)}, the model wants "
                           f"{tuple(own[bad].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    return replaced


def _epoch_line(row: dict[str, float], epochs: int, best: bool) -> str:
    return (f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.2e}  train loss "
            f"{row['train_loss']:.4f} acc {100 * row['train_acc']:.2f}%  val loss "
            f"{row['val_loss']:.4f} acc {100 * row['val_acc']:.2f}% top5 "
            f"{100 * row['val_top5']:.2f}%  {row['train_seconds']:.1f}s "
            f"{row['train_images_per_s']:.0f} img/s" + ("  *best" if best else ""))


def _cuda_ids(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _get_rng(device: torch.device) -> dict[str, Any]:
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _set_rng(rng: dict[str, Any], device: torch.device) -> None:
    """Restored for completeness: each epoch reseeds from (seed, epoch) anyway."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


@contextlib.contextmanager
def _determinism(enabled: bool, device: torch.device) -> Iterator[None]:
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
