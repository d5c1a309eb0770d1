"""Why MobileNet v3 trained on mnist5k at 32 px scores 10% held out: one decisive table.

    OMP_NUM_THREADS=1 python benchmarks/train/bn_study.py          # every variant
    OMP_NUM_THREADS=1 python benchmarks/train/bn_study.py --only base mom0.1

Each variant trains with the same loop as `edgecnn train` (engine.train_epoch, the default
SGD recipe: lr 0.1, cosine, 1 warm-up epoch, batch 128, seed 0), without precise BN, then
evaluates the same final weights several ways (AdamW: the `adamw` variant):

- eval BN: held-out top-1 with the running statistics (what `edgecnn train` reports);
- batch BN: held-out top-1 with each batch's own statistics (BN in train mode, shuffled
  250-image batches, running statistics left alone);
- precise BN: held-out top-1 after recompute_bn_stats() over the training images;
- train (eval BN): the *training* images, unaugmented, with the running statistics;
- stats gap: over all BN layers, the largest |running mean - precise mean| / precise std.

If only eval BN collapses and precise BN restores it, the weights are fine and the running
statistics are the cause; a variant that changes the architecture (dropout 0, ReLU for
hard-swish, no SE) tests the other suspects: if it still collapses with the paper's momentum,
that part is not the cause. Results: bn_study.json and the table
in bn_study.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn

from edgecnn.data import load_dataset
from edgecnn.layers.inverted_residual import SqueezeExcitation
from edgecnn.registry import create_model
from edgecnn.train.engine import evaluate_totals, generator, make_transform, train_epoch
from edgecnn.train.optim import build_optimizer, build_scheduler
from edgecnn.train.precise_bn import batchnorms, recompute_bn_stats

HERE = Path(__file__).resolve().parent
TABLE_START, TABLE_END = "<!-- table: bn_study.py -->", "<!-- /table -->"

# name -> (model, resolution, change); change edits the freshly built model.
VARIANTS: dict[str, tuple[str, int, str]] = {
    "base": ("mobilenet_v3_small", 32, "none (paper: BN momentum 0.01)"),
    "mom0.1": ("mobilenet_v3_small", 32, "BN momentum 0.1 while training"),
    "dropout0": ("mobilenet_v3_small", 32, "classifier dropout 0"),
    "relu": ("mobilenet_v3_small", 32, "ReLU for every hard-swish"),
    "no_se": ("mobilenet_v3_small", 32, "SE blocks replaced by identity"),
    "adamw": ("mobilenet_v3_small", 32, "AdamW lr 2e-3, weight decay 0.05"),
    "large": ("mobilenet_v3_large", 32, "none (v3 large)"),
}


def build(name: str, num_classes: int) -> nn.Module:
    arch, _res, _ = VARIANTS[name]
    torch.manual_seed(0)
    model = create_model(arch, num_classes=num_classes, in_chans=1,
                         **({"dropout": 0.0} if name == "dropout0" else {}))
    if name in ("mom0.1", "large_mom0.1"):
        for m in batchnorms(model):
            m.momentum = 0.1
    if name == "relu":
        _swap(model, nn.Hardswish, lambda _m: nn.ReLU(inplace=True))
    if name == "no_se":
        _swap(model, SqueezeExcitation, lambda _m: nn.Identity())
    return model


def _swap(model: nn.Module, kind: type[nn.Module], make) -> None:
    """Replace every `kind` submodule by make(it)."""
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, child_name, make(child))


def study(name: str, epochs: int) -> dict:
    _arch, res, change = VARIANTS[name]
    train_set, val_set = load_dataset("mnist5k", split="train"), load_dataset("mnist5k",
                                                                              split="val")
    model = build(name, train_set.num_classes)
    cpu = torch.device("cpu")
    train_tf = make_transform(train_set, resolution=res, in_chans=1, train=True)
    val_tf = make_transform(val_set, resolution=res, in_chans=1, train=False)
    plain_tf = make_transform(train_set, resolution=res, in_chans=1, train=False)
    opt = build_optimizer(model, "adamw", 2e-3, 0.05, 0.9) if name == "adamw" \
        else build_optimizer(model, "sgd", 0.1, 5e-4, 0.9)
    steps = len(train_set) // 128
    sched = build_scheduler(opt, epochs=epochs, steps_per_epoch=steps, warmup_epochs=1.0,
                            kind="cosine")
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        stats = train_epoch(model, train_set, train_tf, opt, sched, batch_size=128, seed=0,
                            epoch=epoch, device=cpu)
    seconds = time.perf_counter() - start

    def top1(net: nn.Module, data=val_set, tf=val_tf) -> float:
        return evaluate_totals(net, data, tf, device=cpu).as_dict()["acc"]

    row = {"variant": name, "model": _arch, "resolution": res, "change": change,
           "epochs": epochs, "train_batches_top1": stats.acc, "eval_bn_top1": top1(model),
           "train_eval_bn_top1": top1(model, train_set, plain_tf)}
    batch_bn = copy.deepcopy(model)
    for m in batchnorms(batch_bn):  # batch statistics, running ones not updated
        m.track_running_stats, m.running_mean, m.running_var = False, None, None
    row["batch_bn_top1"] = _top1_train_mode_bn(batch_bn, val_set, val_tf)
    precise = copy.deepcopy(model)
    recompute_bn_stats(precise, train_set, train_tf, batch_size=128, seed=0, epoch=epochs,
                       device=cpu)
    row["precise_bn_top1"] = top1(precise)
    row["stats_gap"] = max(
        ((a.running_mean - b.running_mean).abs() / b.running_var.sqrt().clamp_min(1e-3)).max()
        .item() for a, b in zip(batchnorms(model), batchnorms(precise)))
    row["train_seconds"] = seconds
    return row


def _top1_train_mode_bn(model: nn.Module, data, tf) -> float:
    """Held-out top-1 with BN normalizing by each 250-image batch (evaluate_totals puts the
    model in eval mode; BN without running statistics uses the batch's in any mode). The
    held-out split is stored in class order: shuffled, or a batch would hold 2-3 classes."""
    shuffled = data.subset(torch.randperm(len(data), generator=generator(0)).numpy())
    return evaluate_totals(model, shuffled, tf, batch_size=250).as_dict()["acc"]


def write(rows: list[dict]) -> None:
    """bn_study.json, and the table in bn_study.md between its markers (the text around
    it, the reading of the numbers, is kept)."""
    path = HERE / "bn_study.json"
    old = {r["variant"]: r for r in json.loads(path.read_text())["rows"]} if path.exists() \
        else {}
    old.update({r["variant"]: r for r in rows})
    ordered = [old[n] for n in VARIANTS if n in old]
    path.write_text(json.dumps({"rows": ordered}, indent=2) + "\n")
    lines = [TABLE_START,
             "| variant | change | train batches | eval BN | batch BN | precise BN | "
             "train imgs, eval BN | stats gap |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in ordered:
        lines.append(f"| {r['variant']} | {r['change']} | {100 * r['train_batches_top1']:.1f}% "
                     f"| {100 * r['eval_bn_top1']:.1f}% | {100 * r['batch_bn_top1']:.1f}% | "
                     f"{100 * r['precise_bn_top1']:.1f}% | "
                     f"{100 * r['train_eval_bn_top1']:.1f}% | {r['stats_gap']:.1f} |")
    lines.append(TABLE_END)
    md = HERE / "bn_study.md"
    text = md.read_text() if md.exists() else f"{TABLE_START}\n{TABLE_END}\n"
    head, rest = text.split(TABLE_START, 1)
    md.write_text(head + "\n".join(lines) + rest.split(TABLE_END, 1)[1])
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.only or VARIANTS:  # the table is written after each variant
        row = study(name, args.epochs)
        print(json.dumps(row), flush=True)
        write([row])


if __name__ == "__main__":
    main()
