"""The flags for ONNX files without edgecnn metadata, in one place for every entry point.

    edgecnn predict other.onnx cat.jpg --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 \
        --resolution 224 --labels imagenet.txt

`edgecnn predict`, `edgecnn bench` (through edgecnn/cli/args.py) and deploy/app.py (which
must not import the CLI) add them with `add_preprocess_arguments` and pass
`load_arguments(args)` to `edgecnn.runtime.load`. Mean and std are on the 0-1 pixel scale,
as in torchvision; a file with edgecnn metadata needs none of them (given, they replace its
values). Argparse and the standard library only: this is part of the torch-free runtime.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError


def channel_values(text: str) -> tuple[float, ...]:
    """'0.485,0.456,0.406' -> three floats (or one, for gray models); argparse type."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected R,G,B (3 numbers, or 1 for a gray model), "
                                         f"got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_preprocess_arguments(parser: argparse.ArgumentParser, *,
                             resolution: bool = True) -> None:
    """--mean, --std, --labels and (unless the parser has its own) --resolution."""
    group = parser.add_argument_group("ONNX files without edgecnn metadata")
    group.add_argument("--mean", type=channel_values, metavar="R,G,B", default=None,
                       help="per-channel mean, 0-1 pixel scale (torchvision's convention; "
                       "default: the artifact's metadata)")
    group.add_argument("--std", type=channel_values, metavar="R,G,B", default=None,
                       help="per-channel std, 0-1 pixel scale (default: the artifact's metadata)")
    if resolution:
        group.add_argument("--resolution", type=_positive_int, metavar="N", default=None,
                           help="input side in pixels, when the model's input is dynamic "
                           "(default: the metadata's or the input's fixed size)")
    group.add_argument("--labels", type=Path, metavar="FILE", default=None,
                       help="class names, one per line, in the order of the model's outputs "
                       "(default: the metadata's, else the output index)")


def load_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that were given, as `load()` keywords: mean, std, resolution, classes."""
    if (args.mean is None) != (args.std is None):
        raise EdgeCNNError("--mean and --std go together: give both")
    if args.std is not None and any(s <= 0 for s in args.std):
        raise EdgeCNNError(f"--std values must be positive, got {args.std}")
    out: dict[str, Any] = {}
    if args.mean is not None:
        out["mean"], out["std"] = args.mean, args.std
    if getattr(args, "resolution", None) is not None:
        out["resolution"] = args.resolution
    if args.labels is not None:
        out["classes"] = read_labels(args.labels)
    return out


def read_labels(path: str | Path) -> tuple[str, ...]:
    """One class name per line (surrounding spaces and blank lines dropped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from Windows editors is not a name
    except FileNotFoundError:
        raise EdgeCNNError(f"{path}: no such labels file") from None
    except UnicodeDecodeError:
        raise EdgeCNNError(f"{path}: a labels file must be UTF-8 text") from None
    except OSError as exc:
        raise EdgeCNNError(f"{path}: cannot read labels: {exc.strerror or exc}") from None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise EdgeCNNError(f"{path}: no class names (one per line)")
    return labels
