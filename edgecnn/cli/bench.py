"""`edgecnn bench`: latency distributions, throughput, memory and accuracy side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgecnn.cli.args import (add_no_progress, add_preprocess_flags, add_remote_flags, csv_of,
                              positive_float, positive_int, positive_ints, preprocess_kwargs,
                              remote_kwargs)
from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:
    from edgecnn.progress import Bar

ORDER = 50
RUNTIME_CHOICES = ("onnxruntime", "openvino", "tensorrt", "fastest", "torch", "torch-eager",
                   "torch-compile", "torch-cudagraphs")
PRECISION_CHOICES = ("fp32", "fp16", "int8")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmark artifacts across runtimes and precisions")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="artifact directory, ONNX file, or zoo name (exported on the fly)")
    p.add_argument("--runtime", type=csv_of(RUNTIME_CHOICES), default=("onnxruntime",),
                   help="comma list: onnxruntime,openvino,tensorrt,fastest (the file, CPU "
                   "runtime and threads `edgecnn tune` recorded for this machine; timed "
                   "anyway, beside the rest, for an artifact tuned here), "
                   "torch[-compile|-cudagraphs]")
    p.add_argument("--precision", type=csv_of(PRECISION_CHOICES), default=("fp32",),
                   help="comma list: fp32,fp16,int8")
    p.add_argument("--batch", type=positive_ints, default=(1,), help="comma list, e.g. 1,8,32")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads per runtime (default: all cores)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (or an OpenVINO device)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before each case")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--iters", type=positive_int, default=None,
                       help="timed calls per case (default 200)")
    group.add_argument("--duration", type=positive_float, default=None,
                       help="seconds of timed calls per case (default: --iters)")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds")
    p.add_argument("--data", default=None,
                   help="data set for accuracy, e.g. mnist5k (default: latency only)")
    p.add_argument("--alpha", type=positive_float, default=1.0, help="for zoo names")
    p.add_argument("--resolution", type=positive_int, default=None,
                   help="for zoo names, and ONNX files whose input size is dynamic (default: "
                   "the model's)")
    add_preprocess_flags(p, resolution=False)  # --mean/--std/--labels: for --data accuracy
    p.add_argument("--format", choices=("table", "json", "csv", "md"), default="table")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="print JSON (the same as --format json)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="also write to this file (default: stdout only)")
    add_no_progress(p)
    add_remote_flags(p, several=True)
    p.set_defaults(func=run)

    p = subparsers.add_parser("sweep", help="the alpha x resolution grid: params, MACs, "
                              "latency (and accuracy with --train), table and plots")
    p.add_argument("model", help="a zoo name (edgecnn list)")
    p.add_argument("--alpha", type=csv_of(None, float), default=(0.25, 0.5, 0.75, 1.0),
                   help="comma list of width multipliers")
    p.add_argument("--resolution", type=positive_ints, default=(128, 160, 192, 224),
                   help="comma list of input sizes in pixels")
    p.add_argument("--runtime", type=csv_of(RUNTIME_CHOICES[:4]), default=("onnxruntime",),
                   help="comma list: onnxruntime,openvino,tensorrt,fastest")
    p.add_argument("--precision", type=csv_of(("fp32", "int8")), default=("fp32",),
                   help="comma list: fp32,int8")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads per runtime (default: all cores)")
    p.add_argument("--iters", type=positive_int, default=100, help="timed calls per point")
    p.add_argument("--train", action="store_true", help="train every point (needs --data)")
    p.add_argument("--data", default=None, help="data set for --train (default: none)")
    p.add_argument("--epochs", type=positive_int, default=10, help="with --train, per point")
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, default=None,
                   help="directory (default: sweeps/<model>)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--round-channels", type=positive_int, default=None, metavar="N",
                   help="MobileNet v1: round every width to a multiple of N (8: torchvision's "
                   "_make_divisible) instead of the paper's truncation (default: the paper's)")
    add_no_progress(p, "progress bars")
    p.set_defaults(func=run_sweep_cmd)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    import os

    from edgecnn.bench.run import BenchConfig
    from edgecnn.bench.sweep import SweepConfig, run_sweep, sweep_table
    from edgecnn.timing.loop import TimingPlan

    from edgecnn.registry import get_spec

    from edgecnn.progress import quiet

    quiet(args.no_progress)
    bad = [a for a in args.alpha if not a > 0]
    if bad:
        raise EdgeCNNError(f"alpha must be positive, got {bad[0]}")
    get_spec(args.model)  # an unknown name fails before the output directory exists
    from edgecnn.profile import channel_alignment, profile_model, round_kwargs

    rounding = round_kwargs(args.model, args.round_channels)
    if rounding and args.train:
        raise EdgeCNNError("--round-channels with --train is not supported yet: sweep the "
                           "latency (no --train), or train with the paper's widths")
    for alpha in args.alpha:  # what each width costs before anything is exported
        aligned = channel_alignment(profile_model(args.model, alpha=alpha,
                                                  resolution=args.resolution[0],
                                                  per_layer=True, **rounding))
        if aligned:
            print(f"edgecnn: warning: {aligned['warning']}", file=sys.stderr)
    bench = BenchConfig(runtimes=args.runtime, precisions=args.precision,
                        threads=args.threads or os.cpu_count() or 1,
                        plan=TimingPlan(iters=args.iters))
    out = args.out or Path("sweeps") / args.model
    rows = run_sweep(SweepConfig(model=args.model, alphas=args.alpha,
                                 resolutions=args.resolution, out=out, bench=bench,
                                 train=args.train, data=args.data, epochs=args.epochs,
                                 round_channels=args.round_channels),
                     log=lambda line: print(line, file=sys.stderr))
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(sweep_table(rows))
    print(f"\nwritten: {out}/sweep.json, sweep.md, latency_vs_macs.png"
          + (", accuracy_vs_latency.png" if args.train else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    import os

    from edgecnn.bench.report import render
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.timing.loop import TimingPlan

    if args.warmup < 0:
        raise EdgeCNNError(f"--warmup must be 0 or more, got {args.warmup}")
    if not args.remote:  # more threads than cores: refused, as tune refuses them
        from edgecnn.tune.run import check_threads

        check_threads(args.threads)
    if args.output is not None and args.output.is_dir():
        raise EdgeCNNError(f"-o {args.output}: is a directory; name a file")
    runtimes = tuple("torch-eager" if r == "torch" else r for r in args.runtime)
    pre = preprocess_kwargs(args)
    plan = TimingPlan(warmup=args.warmup,
                      iters=None if args.duration else (args.iters or 200),
                      duration_s=args.duration)
    config = BenchConfig(runtimes=runtimes, precisions=args.precision, batches=args.batch,
                         threads=args.threads or os.cpu_count() or 1, device=args.device,
                         plan=plan, rounds=args.rounds, data=args.data, alpha=args.alpha,
                         resolution=args.resolution, mean=pre.get("mean"), std=pre.get("std"),
                         classes=pre.get("classes"))
    failures: list[str] = []
    if args.remote:
        records, cond, failures = _remote(args)
    else:
        bar = _progress(args.no_progress)
        try:
            records, cond = run_bench(args.targets, config, progress=bar)
        finally:
            bar.close()
    for line in failures:  # a fleet: the other devices finished
        print(f"edgecnn: error: {line}", file=sys.stderr)
    if not records:
        raise EdgeCNNError("nothing was measured")
    text = render(records, args.format, cond)
    print(text)
    if args.output is not None:
        from edgecnn.fileio import atomic_write

        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, text + "\n")
        if len({r.host for r in records}) > 1:  # a fleet: its devices side by side
            from edgecnn.bench.plots import fleet_plot_path, write_fleet_plot

            plot = write_fleet_plot(records, fleet_plot_path(args.output))
            print(f"edgecnn: wrote {plot['path']}", file=sys.stderr)
    if cond.get("interrupted"):
        print("edgecnn: interrupted; the results above are what was measured", file=sys.stderr)
        return 130
    return 2 if failures else 0


def _remote(args: argparse.Namespace) -> tuple[list, dict, list[str]]:
    """The same bench on each --remote device (edgecnn/remote/run.py)."""
    from edgecnn.remote.run import remote_bench

    if args.data or preprocess_kwargs(args) or args.alpha != 1.0 or args.resolution:
        raise EdgeCNNError("--remote benchmarks artifacts as exported: --data, --mean/--std, "
                           "--labels, --alpha and --resolution apply to local runs")
    argv = ["--runtime", ",".join(args.runtime), "--precision", ",".join(args.precision),
            "--batch", ",".join(map(str, args.batch)), "--device", args.device,
            "--warmup", str(args.warmup), "--rounds", str(args.rounds)]
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += ["--duration", str(args.duration)] if args.duration else \
        ["--iters", str(args.iters)] if args.iters else []
    records, cond, failures = remote_bench(
        args.remote, args.targets, argv, log=lambda line: print(f"edgecnn: {line}",
                                                               file=sys.stderr),
        max_clocks=args.max_clocks, **remote_kwargs(args))
    if not records and failures:
        raise EdgeCNNError(failures[0] if len(failures) == 1 else
                           f"every device failed: {'; '.join(failures)}")
    return records, cond, failures


def _progress(disabled: bool) -> Bar:
    """A bar over each stage of the bench (edgecnn.progress: off when not on a terminal or
    with --no-progress; a plain ticker on a device without tqdm)."""
    from edgecnn.progress import Bar, quiet

    quiet(disabled)
    return Bar(None, "bench: starting", unit="step")
