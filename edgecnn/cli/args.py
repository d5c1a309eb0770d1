"""Argument types shared by the subcommands: bad values fail at parse time with one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T", int, float)


def _checked(text: str, kind: Callable[[str], T], ok: Callable[[T], bool], expected: str) -> T:
    """Parse `text` as `kind` and check it; argparse prints the message as one line."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _checked(text, float, lambda v: math.isfinite(v) and v > 0, "a positive number")


def non_negative_float(text: str) -> float:
    return _checked(text, float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def csv_of(choices: tuple[str, ...] | None, kind: Callable[[str], object] = str):  # noqa: ANN201
    """'a,b' -> ('a', 'b'), each checked: a bad item is one argparse error line."""
    def parse(text: str) -> tuple:
        items = tuple(t.strip() for t in text.split(",") if t.strip())
        if not items:
            raise argparse.ArgumentTypeError(f"empty list {text!r}")
        if choices is not None:
            bad = [t for t in items if t not in choices]
            if bad:
                raise argparse.ArgumentTypeError(
                    f"{bad[0]!r} is not one of {', '.join(choices)}")
            return items
        return tuple(kind(t) for t in items)
    return parse


def positive_ints(text: str) -> tuple[int, ...]:
    return tuple(positive_int(t) for t in text.split(",") if t.strip()) or (
        positive_int(text),)


def open_ratio(text: str) -> float:
    """A share strictly between 0 and 1 (a prune ratio)."""
    return _checked(text, float, lambda v: math.isfinite(v) and 0 < v < 1,
                    "a number in (0, 1)")


def alpha_arg(text: str) -> float:
    """The width multiplier: a finite number > 0."""
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"alpha must be a positive number, got {text!r}") from None


# The layout of `imagefolder:PATH` and the split rule when val/ is missing, as
# edgecnn/data/datasets.py (_imagefolder, stratified_split, DataConfig) implements them.
IMAGEFOLDER_HELP = (
    "imagefolder:PATH is one folder per class: PATH/train/CLASS/*.jpg and PATH/val/CLASS/ "
    "(PATH/test/CLASS/ for a test split; without val/, test/ is the held-out split). With "
    "neither val/ nor test/, the class folders of PATH/train/ (or of PATH itself when there "
    "is no train/) are split by file list: 20%% of the images held out as val, each class "
    "floor(20%% of its images) and the remainder of ceil(20%% of all) to the classes with the "
    "largest fractions, every class keeping one train image, picked by a fixed hash "
    "(seed 0): the same files on every run")


def add_no_progress(parser: argparse.ArgumentParser, what: str = "progress bar") -> None:
    """--no-progress, for every command that shows progress on a terminal."""
    parser.add_argument("--no-progress", action="store_true",
                        help=f"no {what} (none either when stderr is not a terminal)")


def add_preprocess_flags(parser: argparse.ArgumentParser, *, resolution: bool = True) -> None:
    """--mean/--std/--resolution/--labels for ONNX files without edgecnn metadata; turn them
    into `load()` keywords with `preprocess_kwargs(args)`. The runtime holds the one
    implementation (deploy/app.py uses it too, without the CLI)."""
    from edgecnn.runtime.flags import add_preprocess_arguments

    add_preprocess_arguments(parser, resolution=resolution)


def preprocess_kwargs(args: argparse.Namespace) -> dict:
    """mean, std, resolution and classes for `edgecnn.runtime.load`, those given only."""
    from edgecnn.runtime.flags import load_arguments

    return load_arguments(args)


def add_remote_flags(p: argparse.ArgumentParser, *, several: bool) -> None:
    """--remote DEST (bench: several, a fleet), --remote-python, --wheelhouse."""
    p.add_argument("--remote", action="append" if several else "store", metavar="DEST",
                   help="run on a device reached by SSH: user@host, a Host alias of "
                   "~/.ssh/config, or ssh://user@host:port" + (" (repeat for a fleet)"
                                                              if several else "")
                   + " (default: this machine)")
    p.add_argument("--remote-python", default="python3", metavar="EXE",
                   help="the device's Python 3.10+ (default python3)")
    p.add_argument("--wheelhouse", type=Path, default=None, metavar="DIR",
                   help="wheels for the device's install (numpy, onnxruntime, pillow; onnx "
                   "for tune), pushed and installed with --no-index (default: the device's "
                   "own pip index)")
    if several:  # bench: deploy/jetson/run_benchmark.sh's MAX_CLOCKS=1, from here
        p.add_argument("--max-clocks", action="store_true",
                       help="on a Jetson, pin the clocks with jetson_clocks for the run and "
                       "restore them after (default: as they are; the power mode and "
                       "tegrastats power are recorded either way)")
    p.add_argument("--remote-timeout", type=positive_float, default=3600.0, metavar="SECONDS",
                   help="stop the command on the device after this long, and fail (default "
                   "3600)")


def remote_kwargs(args: argparse.Namespace) -> dict:
    return {"python": args.remote_python, "wheelhouse": args.wheelhouse,
            "timeout": args.remote_timeout}
