"""`edgecnn pipeline RECIPE`: the main job, train -> prune -> export -> check -> benchmark."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ORDER = 60
DEFAULT_RECIPE = "export/pipeline.yaml"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pipeline", help="the whole job: train, prune, export fp32/int8, "
                              "check accuracy in ONNX Runtime and OpenVINO, benchmark")
    p.add_argument("recipe", nargs="?", default=DEFAULT_RECIPE,
                   help=f"YAML recipe (default {DEFAULT_RECIPE})")
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None,
                   help="run directory (default runs/pipeline-<recipe name>); an interrupted "
                   "run resumes there")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object (progress goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgecnn.pipeline.recipe import load_recipe
    from edgecnn.pipeline.run import run_pipeline

    recipe = load_recipe(args.recipe)
    out = args.out or Path("runs") / f"pipeline-{Path(args.recipe).stem}"
    start = time.perf_counter()
    summary = run_pipeline(recipe, out, log=lambda line: print(line, file=sys.stderr,
                                                               flush=True))
    if args.json:
        import json

        print(json.dumps({k: v for k, v in summary.items() if k != "table"}, indent=2,
                         default=str))
        return 0
    print(summary["table"])
    print(f"\nreport: {out / 'report.md'}  ({time.perf_counter() - start:.0f} s)")
    return 0
