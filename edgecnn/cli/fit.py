"""`edgecnn fit FAMILY --data DATA --latency-ms X`: the most accurate model of a family that
runs within X ms on this machine or a device (--remote), trained on the user's data,
exported and tuned (edgecnn/fit/run.py)."""

from __future__ import annotations

import argparse
import json
import os

from edgecnn.cli.args import (add_no_progress, add_remote_flags, csv_of, positive_float,
                              positive_int, positive_ints, remote_kwargs)

ORDER = 38  # after train, before export in `edgecnn --help`


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    from edgecnn.fit.space import DEFAULT_ALPHAS, DEFAULT_RESOLUTIONS

    p = subparsers.add_parser(
        "fit", help="choose alpha, resolution, pruning and precision to fit a latency budget "
        "on this machine or a device (--remote)",
        description="Measures the family's alpha x resolution grid on this machine or on a "
        "device reached by SSH (--remote; training stays here) (a "
        "per-layer latency table, checked on held-out grid points), trains the candidates "
        "that can meet the budget by successive halving, prunes the best near miss toward "
        "the budget by measured latency, and ships the most accurate one that meets it, "
        "timed as it will run, into DIR/artifact with DIR/fit.json and DIR/report.md. A "
        "rerun in the same DIR skips what a killed run finished.")
    p.add_argument("family", help="a zoo family with a width multiplier (mobilenet, "
                   "mobilenet_v2, ...) or an import path package.module:callable taking "
                   "alpha (or width_mult) and num_classes")
    p.add_argument("--data", required=True, help="training and held-out data: mnist5k, "
                   "digits, imagefolder:PATH, ...")
    p.add_argument("--latency-ms", type=positive_float, required=True, metavar="X",
                   help="the budget: batch-1 latency on the device that measures (this "
                   "machine, or --remote), in milliseconds")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=f"intra-op threads the model will run with (default: every core of "
                   f"the device; {os.cpu_count()} here)")
    p.add_argument("--precision", type=csv_of(("fp32", "int8")), default=("fp32",), metavar="LIST",
                   help="precisions to consider, comma-separated: fp32, int8")
    p.add_argument("--alphas", type=csv_of(None, positive_float), default=DEFAULT_ALPHAS,
                   metavar="LIST",
                   help="width multipliers of the grid")
    p.add_argument("--resolutions", type=positive_ints, default=DEFAULT_RESOLUTIONS,
                   metavar="LIST",
                   help="input resolutions of the grid")
    p.add_argument("--epochs", type=positive_int, default=8,
                   help="the full schedule, which successive halving gives its finalists")
    p.add_argument("--time-budget", type=positive_float, default=None, metavar="MIN",
                   help="minutes for the whole fit (default: no limit)")
    p.add_argument("-o", "--out", default=None, metavar="DIR",
                   help="fit directory (default: fits/FAMILY-Xms)")
    p.add_argument("--force", action="store_true",
                   help="replace a DIR that holds another fit")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="train candidates as Ray tasks (pip install \"edgecnn[ray]\"): a "
                   "local Ray instance on this machine's cores, or the cluster at ADDRESS "
                   "(auto, ray://host:10001); latency is still measured on this machine or the "
                   "--remote device, never on a worker (default: off, local processes one at "
                   "a time)")
    p.add_argument("--json", action="store_true", help="print fit.json")
    add_remote_flags(p, several=False)
    add_no_progress(p)
    p.set_defaults(func=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from edgecnn.fit.report import table
    from edgecnn.fit.run import FitSpec, fit
    from edgecnn.progress import Ticker, quiet, write

    quiet(args.no_progress)
    out = args.out or f"fits/{args.family.replace(':', '.')}-{args.latency_ms:g}ms"

    def log(line: str) -> None:
        if ticker.bar is not None:
            ticker.write(f"edgecnn: {line}")
        elif not args.json:
            write(f"edgecnn: {line}")

    executor = None
    if args.ray is not None:
        from edgecnn.fit.executor import RayExecutor

        executor = RayExecutor(None if args.ray == "local" else args.ray)
    with Ticker("fit") as ticker:
        measure = None
        if args.remote:  # latency on the device; training, export and the guard here
            from edgecnn.fit.space import check_family
            from edgecnn.remote.measure import RemoteMeasure

            check_family(args.family)  # a typo is one line now, not after the bootstrap

            measure = RemoteMeasure.connect(args.remote, args.threads, log=log,
                                            **remote_kwargs(args))
        spec = FitSpec(args.family, data=args.data, budget_ms=args.latency_ms, out=out,
                       threads=args.threads, precisions=args.precision, alphas=args.alphas,
                       resolutions=args.resolutions, epochs=args.epochs,
                       time_budget_min=args.time_budget, force=args.force, executor=executor,
                       measure=measure)
        result = fit(spec, log=log, stage=lambda desc: ticker.write(f"edgecnn: {desc}")
                     if ticker.bar is not None else None)
    rec = result.record
    if args.json:
        print(json.dumps(rec, indent=2))
        return 0
    print(table(rec["candidates"], rec["chosen"]))
    chosen = rec["candidates"][rec["chosen"]]
    print(f"chosen: {chosen['name']}: {chosen['top1']:.2f}% top-1, {chosen['latency_ms']:.3f} "
          f"ms measured as it will run (budget {rec['budget_ms']:g} ms, {rec['threads']} "
          f"thread(s)); artifact {rec['artifact']}")
    if not result.bound:
        print(f"the budget did not bind: every candidate runs within "
              f"{rec['budget_ms']:g} ms; the most accurate was chosen")
    return 0  # what was written: the log's "wrote" line (fit/report.py), on stderr
