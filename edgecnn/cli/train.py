"""`edgecnn train` and `edgecnn eval`: a checkpointed training run, and a checkpoint's report.

Options the user leaves out are absent from the namespace (argparse.SUPPRESS), so the
training config gets its documented defaults and `--resume` knows which options were
actually asked for (those must match the run being resumed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from edgecnn.cli import interrupted
from edgecnn.cli.args import IMAGEFOLDER_HELP, add_no_progress, alpha_arg

ORDER = 20  # after list/info in `edgecnn --help`

# command-line option -> TrainConfig field (dest names are the field names)
_TRAIN_FIELDS = ("alpha", "resolution", "in_chans", "epochs", "batch_size", "optimizer", "lr",
                 "weight_decay", "momentum", "schedule", "warmup_epochs", "label_smoothing",
                 "precise_bn", "augment", "init", "seed", "out", "device", "amp")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a zoo model on a data set (checkpoints, metrics, curves)",
        description="Train MODEL on DATA. Under torchrun, one process per GPU (or CPU) with "
        "DistributedDataParallel; --batch-size is the global batch.",
        argument_default=argparse.SUPPRESS)
    p.add_argument("model", help="zoo name (edgecnn list) or import path "
                   "package.module:callable returning an nn.Module")
    p.add_argument("--data", required=True,
                   help="mnist5k, digits, imagefolder:PATH, mnist-idx:PATH or cifar10-bin:PATH. "
                   + IMAGEFOLDER_HELP)
    p.add_argument("--alpha", type=alpha_arg, help="width multiplier (default 1)")
    p.add_argument("--resolution", type=int, help="input side in pixels (default: the model's)")
    p.add_argument("--in-chans", type=int, help="model input channels (default: the model's)")
    p.add_argument("--epochs", type=int, help="default 15")
    p.add_argument("--batch-size", type=int, help="global batch (default 128)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), help="default sgd (Nesterov)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: sgd 0.1, adamw 2e-3)")
    p.add_argument("--weight-decay", type=float,
                   help="default: sgd 5e-4, adamw 0.05; never on BN, biases, depthwise filters")
    p.add_argument("--momentum", type=float, help="SGD momentum / AdamW beta1 (default 0.9)")
    p.add_argument("--schedule", choices=("cosine", "step"),
                   help="decay after the warm-up (default cosine; step: /10 at 50%% and 75%%)")
    p.add_argument("--warmup-epochs", type=float, help="linear warm-up (default 1)")
    p.add_argument("--label-smoothing", type=float, help="in [0, 1) (default 0)")
    p.add_argument("--precise-bn", type=int, metavar="IMAGES",
                   help="after each epoch, recompute BatchNorm's running statistics over this "
                   "many training images (default 2048; 0: off, keep the running averages)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="the data set's augmentation (default on)")
    p.add_argument("--init", metavar="CKPT",
                   help="start from a checkpoint; a new classifier if the class count differs "
                   "(default: random initial weights)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("-o", "--output", "--out", dest="out", metavar="DIR",
                   help="run directory (default runs/MODEL_..._DATA)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="mixed precision on CUDA (default on)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last completed epoch")
    group.add_argument("--force", action="store_true", help="replace a run already in --out")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object at the end (the epoch lines go to stderr)")
    add_no_progress(p, "progress bar within each epoch")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval", help="a checkpoint's accuracy: top-1/5, per class, confusion, filters, maps",
        description="Evaluate a training checkpoint (.pt, or a run directory: its best.pt) in "
        "PyTorch, on the images as the runtime preprocesses them. For an exported artifact "
        "use `edgecnn bench ARTIFACT --data DATA`.")
    p.add_argument("checkpoint", help="best.pt/last.pt, or a run directory")
    p.add_argument("--data", default=None,
                   help="data set to evaluate on, e.g. imagefolder:PATH (its val/ or held-out "
                   "split; see `edgecnn train --help`) (default: the one the checkpoint was "
                   "trained on)")
    p.add_argument("--split", default="val", choices=("val", "test", "train"),
                   help="test only where the data set has one (imagefolder test/, IDX t10k, "
                   "CIFAR-10 test_batch)")
    p.add_argument("-o", "--output", "--out", dest="out", metavar="DIR", default=None,
                   help="where the pictures go (default: next to the checkpoint)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-pictures", dest="pictures", action="store_false",
                   help="numbers only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from edgecnn.progress import quiet

    quiet(getattr(args, "no_progress", False))
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train

    given: dict[str, Any] = {k: getattr(args, k) for k in _TRAIN_FIELDS if hasattr(args, k)}
    given.setdefault("out", default_out(args))
    config = TrainConfig(model=args.model, data=args.data, **given)
    explicit = {"model", "data", *given} - ({"out"} if not hasattr(args, "out") else set())
    as_json = getattr(args, "json", False)
    log_to = sys.stderr if as_json else sys.stdout
    try:
        result = train(config, resume=getattr(args, "resume", False),
                       force=getattr(args, "force", False), explicit=explicit,
                       log=lambda line: print(line, flush=True, file=log_to))
    except (KeyboardInterrupt, ImportError) as exc:
        if not interrupted(exc):
            raise  # an install problem: main says which package
        if (Path(config.out) / "last.pt").is_file():
            print(f"edgecnn: interrupted; completed epochs are kept in {config.out}/last.pt: "
                  f"continue with the same command and --resume", file=sys.stderr)
        else:  # before the first epoch ended: nothing to resume from
            print("edgecnn: interrupted before the first epoch ended; nothing was saved",
                  file=sys.stderr)
        return 130
    if as_json:
        print(json.dumps({"out": str(result.out), "best_epoch": result.best_epoch,
                          "best_val_acc": result.best_val_acc, "epochs": result.history},
                         indent=2))
    return 0 if result.history else 1


def default_out(args: argparse.Namespace) -> str:
    """runs/MODEL[_aALPHA][_rRES]_DATA: the same arguments give the same folder (--resume)."""
    parts = [args.model]
    if hasattr(args, "alpha"):
        parts.append(f"a{args.alpha:g}")
    if hasattr(args, "resolution"):
        parts.append(f"r{args.resolution}")
    kind, _, path = args.data.partition(":")
    parts.append(kind + (f"-{path.rstrip('/').rsplit('/', 1)[-1]}" if path else ""))
    return "runs/" + re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts))


def run_eval(args: argparse.Namespace) -> int:
    from edgecnn.checkpoint import load_checkpoint
    from edgecnn.tables import format_table
    from edgecnn.train.evaluate import evaluate_checkpoint

    if args.batch_size < 1:
        raise _error(f"--batch-size must be positive, got {args.batch_size}")
    args.checkpoint = checkpoint_of(args.checkpoint)
    data = args.data
    if data is None:
        data = load_checkpoint(args.checkpoint).get("dataset") or ""
        if not data:
            raise _error(f"{args.checkpoint} does not say which data set it was trained on: "
                         f"pass --data")
    report = evaluate_checkpoint(args.checkpoint, data, out=args.out, split=args.split,
                                 batch_size=args.batch_size, device=args.device,
                                 pictures=args.pictures)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [(name, "-" if acc is None else f"{100 * acc:.2f}%", sum(report["confusion"][i]))
            for i, (name, acc) in enumerate(report["per_class"].items())]
    print(format_table(rows, ["class", "accuracy", "images"]))
    print(f"\n{report['model']} on {report['dataset']} ({report['split']}, "
          f"{report['images']} images): top-1 {100 * report['top1']:.2f}%  "
          f"top-5 {100 * report['top5']:.2f}%  loss {report['loss']:.4f}")
    for what, path in report["files"].items():
        print(f"{what}: {path}", file=sys.stdout)
    return 0


def checkpoint_of(path: str) -> str:
    """A checkpoint path as given, or a run directory's best.pt; an exported artifact or
    ONNX file is a clear error (eval takes checkpoints, bench takes artifacts)."""
    from pathlib import Path

    p = Path(path)
    onnx = p.suffix == ".onnx" or (p.is_dir() and (p / "model.onnx").exists())
    if onnx:
        raise _error(f"{path} is an exported ONNX model: eval takes training checkpoints "
                     f"(.pt); for an artifact's accuracy run `edgecnn bench {path} --data DATA`")
    if p.is_dir():
        if (p / "best.pt").is_file():
            return str(p / "best.pt")
        raise _error(f"{path} is a directory without best.pt: pass a checkpoint file or a "
                     f"run directory of `edgecnn train`")
    return path


def _error(message: str) -> Exception:
    from edgecnn.errors import EdgeCNNError

    return EdgeCNNError(message)
