"""`edgecnn pipeline [RECIPE]`: the main job, train -> prune -> export -> check -> benchmark."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ORDER = 60
DEFAULT_RECIPE = "pipeline.yaml"  # shipped in the package: the repository's export/pipeline.yaml


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pipeline", help="the whole job: train, prune, export fp32/int8, "
                              "check accuracy in ONNX Runtime and OpenVINO, benchmark")
    p.add_argument("recipe", nargs="?", type=Path, default=None,
                   help="YAML recipe (default: the packaged one, export/pipeline.yaml in the "
                   "repository)")
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None,
                   help="run directory (default runs/pipeline-<recipe name>); an interrupted "
                   "run resumes there")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object (progress goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from importlib.resources import as_file

    from edgecnn.export.targets import recipe_file
    from edgecnn.pipeline.recipe import load_recipe
    from edgecnn.pipeline.run import run_pipeline

    with as_file(args.recipe or recipe_file(DEFAULT_RECIPE)) as path:
        recipe = load_recipe(path)
    out = args.out or Path("runs") / f"pipeline-{path.stem}"
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
