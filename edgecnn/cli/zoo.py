"""`edgecnn list` and `edgecnn info`: the zoo and one model's layer-by-layer profile."""

from __future__ import annotations

import argparse
import json
import sys
import re
from typing import Any

from edgecnn.cli.args import alpha_arg, positive_int
from edgecnn.errors import EdgeCNNError
from edgecnn.tables import format_table, human

ORDER = 10  # position of these commands in `edgecnn --help`


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "list", help="list the zoo: params and MACs at the default resolution",
        description="List the zoo's models: family, parameters and multiply-adds at each "
        "model's default resolution, and the paper it follows.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style filter, e.g. 'resnet*' (default: every model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_list)

    p = subparsers.add_parser(
        "info", help="one model: totals and a per-layer table",
        description="One model at a width (alpha) and resolution: parameters and multiply-adds "
        "in total and layer by layer (counted on the meta device, nothing runs).")
    p.add_argument("model", help="zoo name or alias (edgecnn list), or an artifact directory "
                   "(its files, per-layer precision, preprocessing, classes, int8 verdict and "
                   "tunings)")
    p.add_argument("--alpha", type=alpha_arg, default=1.0, help="width multiplier")
    p.add_argument("--resolution", type=positive_int, default=None,
                   help="input side in pixels, the resolution multiplier rho (default: the "
                   "model's)")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="classifier outputs (default: the model's, 1000 or 10)")
    p.add_argument("--round-channels", type=positive_int, default=None, metavar="N",
                   help="MobileNet v1: round every width to a multiple of N (8: torchvision's "
                   "_make_divisible) instead of the paper's truncation (default: the paper's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)


def run_list(args: argparse.Namespace) -> int:
    from edgecnn.profile import profile_model
    from edgecnn.registry import get_spec, list_models

    records: list[dict[str, Any]] = []
    names = list_models(args.pattern)
    if not names:
        raise EdgeCNNError(f"no model matches {args.pattern!r}{_closest(args.pattern)}")
    for name in names:
        spec = get_spec(name)
        prof = profile_model(name)
        records.append({"name": name, "family": spec.family, "params": prof.params,
                        "macs": prof.macs, "resolution": spec.resolution,
                        "min_resolution": spec.min_resolution, "alpha": spec.has_alpha,
                        "aliases": list(spec.aliases), "paper": spec.paper})
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [(r["name"], r["family"], r["params"], human(r["macs"]), r["resolution"],
             "yes" if r["alpha"] else "", _short_citation(r["paper"])) for r in records]
    print(format_table(rows, ["model", "family", "params", "MACs", "res", "alpha", "paper"]))
    print(f"{len(records)} models; MACs are multiply-adds of conv and linear layers at batch 1")
    return 0


def _closest(pattern: str) -> str:
    """'; closest: resnet18, resnet34' for a pattern that matched nothing."""
    import difflib

    from edgecnn.registry import list_models

    names = list_models()
    word = pattern.replace("*", "").replace("?", "").lower()
    close = [n for n in names if word and word in n] or difflib.get_close_matches(
        word, names, n=3, cutoff=0.4)
    return f"; closest: {', '.join(close[:5])}" if close else "; see `edgecnn list`"


def _short_citation(paper: str) -> str:
    """'Howard et al., MobileNets: ..., arXiv:1704.04861 (2017)' -> 'Howard et al. 2017'."""
    years = re.findall(r"(?<![\d:.])((?:19|20)\d\d)(?![\d.])", paper)  # not arXiv ids
    return paper.split(",")[0] + (f" {years[0]}" if years else "")


def run_info(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.cli.artifact_info import names_a_path

    if names_a_path(args.model):
        from edgecnn.cli.artifact_info import artifact_dir, artifact_info, print_artifact_info

        info = artifact_info(artifact_dir(args.model))
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print_artifact_info(info)
        return 0
    from edgecnn.profile import profile_model
    from edgecnn.registry import get_spec

    spec = get_spec(args.model)
    from edgecnn.profile import channel_alignment, round_kwargs

    prof = profile_model(args.model, alpha=args.alpha, resolution=args.resolution,
                         num_classes=args.num_classes, per_layer=True,
                         **round_kwargs(args.model, args.round_channels))
    aligned = channel_alignment(prof)
    if aligned:
        print(f"edgecnn: warning: {aligned['warning']}", file=sys.stderr)
    if args.json:
        out = prof.to_dict()
        out.update(family=spec.family, paper=spec.paper, min_resolution=spec.min_resolution,
                   mean=spec.mean, std=spec.std, channel_alignment=aligned)
        print(json.dumps(out, indent=2))
        return 0
    rows = [(l.name, l.type, "x".join(map(str, l.output_shape[1:])), l.params, l.macs)
            for l in prof.layers]
    print(format_table(rows, ["layer", "type", "output", "params", "MACs"]))
    print(f"\n{prof.model}  alpha={prof.alpha:g}  resolution={prof.resolution}  "
          f"classes={prof.num_classes}  params={prof.params:,}  MACs={prof.macs:,} "
          f"({human(prof.macs)})")
    print(f"paper: {spec.paper}")
    return 0
