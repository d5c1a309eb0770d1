"""`edgecnn tune ARTIFACT`: measure int8 placement, runtime and threads on this machine, as
the model will run here, and record the result in the artifact (edgecnn/tune/run.py).

Needs numpy, a runtime and onnx, not torch: `pip install "edgecnn[tune]"` on a device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os

from edgecnn.cli.args import add_no_progress, add_remote_flags, positive_int, remote_kwargs

ORDER = 45  # after predict, before bench in `edgecnn --help`


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune", help="measure int8 placement, runtime and threads on this machine and record "
        "them in the artifact",
        description="Times every block int8 (the exported file), every block float "
        "(model.onnx), a per-block placement searched here and, where convolutions of one "
        "tensor feed one Concat (SqueezeNet's fire modules), every block int8 with the groups "
        "merged that profile faster merged here, in each CPU runtime, at the "
        "thread count the model will run with; the fastest beyond the measured noise is "
        "recorded in ARTIFACT/tuning.json for this device (other devices' records are kept). "
        "load(runtime='auto'), predict and bench then use it on this machine.")
    p.add_argument("artifact", help="artifact directory with model.onnx and model.int8.onnx")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=f"intra-op threads the model will run with (default: every core, "
                   f"{os.cpu_count()} here)")
    p.add_argument("--runtime", default="auto", choices=("auto", "onnxruntime", "openvino"),
                   help="the runtime to tune for; auto: every installed CPU runtime, the "
                   "faster one chosen (default auto)")
    p.add_argument("--json", action="store_true", help="print the device's record as JSON")
    add_no_progress(p, "progress ticker")
    add_remote_flags(p, several=False)
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    from edgecnn.errors import EdgeCNNError

    if args.remote:  # on the device; its record comes back into the local artifact
        from edgecnn.remote.run import remote_tune

        argv = ["--runtime", args.runtime] + (["--threads", str(args.threads)]
                                              if args.threads else [])
        record = remote_tune(args.remote, args.artifact, argv,
                             log=lambda line: print(f"edgecnn: {line}"), **remote_kwargs(args))
        if args.json:
            print(json.dumps(record, indent=2))
        else:
            print(f"{args.remote}: {record['file']} in {record['runtime']}, "
                  f"{record['threads']} thread(s): {record['chosen_ms']:.3f} ms "
                  f"({record['reason']}); recorded in {args.artifact}/tuning.json")
        return 0
    if importlib.util.find_spec("onnx") is None:
        raise EdgeCNNError('`edgecnn tune` rewrites the int8 graph with the onnx package, '
                           'which is not installed: pip install "edgecnn[tune]"')
    from edgecnn.tune.run import TuneSpec, tune

    from edgecnn.progress import Ticker, quiet

    quiet(args.no_progress)

    def log(line: str) -> None:  # on a terminal, each line becomes the ticker's stage
        if ticker.bar is not None:
            ticker.write(f"edgecnn: {line}")
        elif not args.json:
            print(f"edgecnn: {line}")

    with Ticker("tune") as ticker:  # the search and timing: seconds to minutes
        result = tune(TuneSpec(args.artifact, threads=args.threads, runtime=args.runtime),
                      log=log)
    if args.json:
        print(json.dumps(result.record, indent=2))
        return 0
    rec = result.record
    print(f"{args.artifact}: {rec['file']} in {rec['runtime']} {rec['runtime_version']}, "
          f"{rec['threads']} thread(s): {rec['chosen_ms']:.3f} ms"
          f"{' (inconclusive)' if rec['inconclusive'] else ''}")
    for name, ms in rec["candidates_ms"].items():
        print(f"  {name:<24} {ms:8.3f} ms  {rec['speedup_vs_fp32'].get(name, 0):.2f}x vs fp32")
    print(f"  noise band {rec['noise_band']:.1%}; recorded in {result.path}")
    return 0
