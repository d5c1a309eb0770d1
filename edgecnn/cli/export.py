"""`edgecnn export`: a zoo model or a checkpoint to an ONNX artifact directory."""

from __future__ import annotations

import argparse
import sys

from edgecnn.cli.args import (
    alpha_arg,
    non_negative_float,
    non_negative_int,
    open_ratio,
    positive_int,
)

ORDER = 30  # after train/eval in `edgecnn --help`


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export to ONNX: pruning, int8 with an accuracy guard, fp16",
        description="Export MODEL (a zoo name: initialized weights, for latency work) or "
        "CHECKPOINT (from `edgecnn train`: rebuilt from it alone) to a directory with "
        "model.onnx, model.int8.onnx / model.fp16.onnx when asked, and export.json.")
    p.add_argument("source", metavar="MODEL|CHECKPOINT",
                   help="zoo name, checkpoint (.pt) or run directory (its best.pt)")
    p.add_argument("--alpha", type=alpha_arg, help="width multiplier (zoo models; default 1)")
    p.add_argument("--resolution", type=positive_int,
                   help="input side in pixels (default: the model's or the checkpoint's)")
    p.add_argument("--num-classes", type=positive_int, help="zoo models (default: the model's)")
    p.add_argument("--target", default="cpu-x86",
                   help="recipe name in export/ (cpu-x86, cpu-arm, tensorrt, jetson-orin, "
                   "jetson-nano) or a path to a YAML recipe (default cpu-x86)")
    p.add_argument("--prune", type=open_ratio, metavar="RATIO",
                   help="structured: share of MACs to remove; unstructured: share of weights "
                   "(default: no pruning)")
    p.add_argument("--prune-method", choices=("structured", "unstructured"),
                   default="structured")
    p.add_argument("--finetune-epochs", type=non_negative_int, default=0, metavar="E",
                   help="fine-tune after pruning on the checkpoint's data set")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx (static QDQ, per-channel weights)")
    p.add_argument("--calib-data", metavar="DATA",
                   help="data set to calibrate on (train split) and to check accuracy on (val "
                   "split); `random` for latency-only int8 (default: none)")
    p.add_argument("--calib-samples", type=positive_int, default=256, metavar="N",
                   help="calibration images (default 256)")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"),
                   help="first calibration method to try (default: the target's)")
    p.add_argument("--max-drop", type=non_negative_float, metavar="PTS",
                   help="top-1 points int8 may lose before the guard steps in (default 1.0)")
    p.add_argument("--qat-epochs", type=non_negative_int, default=0, metavar="E",
                   help="quantization-aware training as the guard's last step")
    p.add_argument("--fp16", action="store_true",
                   help="also write model.fp16.onnx (GPU targets; float32 inputs and outputs)")
    p.add_argument("--opset", type=positive_int, metavar="K",
                   help="ONNX opset (default: the target's)")
    p.add_argument("--dynamic-batch", action="store_true", help="a dynamic batch dimension")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="artifact directory (default exports/MODEL-aALPHA-rRES)")
    p.add_argument("--force", action="store_true", help="replace an existing export")
    p.add_argument("--json", action="store_true",
                   help="print export.json's report instead of the summary")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgecnn.export import ExportOptions, export

    if Path(args.source).is_dir() and (Path(args.source) / "best.pt").is_file():
        args.source = str(Path(args.source) / "best.pt")  # a run directory of edgecnn train
        print(f"edgecnn: exporting the run's best checkpoint, {args.source}", file=sys.stderr)
    opts = ExportOptions(
        source=args.source, alpha=args.alpha, resolution=args.resolution,
        num_classes=args.num_classes, target=args.target, prune=args.prune,
        prune_method=args.prune_method, finetune_epochs=args.finetune_epochs, int8=args.int8,
        calib_data=args.calib_data, calib_samples=args.calib_samples,
        calib_method=args.calib_method,
        max_drop=1.0 if args.max_drop is None else args.max_drop, qat_epochs=args.qat_epochs,
        fp16=args.fp16, opset=args.opset, dynamic_batch=args.dynamic_batch,
        output=args.output, force=args.force)
    for flag, given in (("--calib-method", args.calib_method is not None),
                        ("--max-drop", args.max_drop is not None)):
        if given and not args.int8:  # a forgotten --int8, not something to ignore
            from edgecnn.errors import EdgeCNNError

            raise EdgeCNNError(f"{flag} applies to --int8 only")
    import contextlib

    # --json: stdout is the JSON alone (torch's exporters print there, from C++ too)
    with _stdout_to_stderr() if args.json else contextlib.nullcontext():
        result = export(opts, log=lambda line: print(f"edgecnn: {line}", file=sys.stderr))
    if args.json:
        import json

        print(json.dumps({"path": str(result.path), **result.report}, indent=2, default=str))
        return 0
    _summary(result.path, result.report)
    return 0


def _stdout_to_stderr():  # noqa: ANN202
    """File descriptor 1 pointed at 2 for a while, Python's sys.stdout with it."""
    import contextlib
    import os

    @contextlib.contextmanager
    def redirect():  # noqa: ANN202
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)

    return redirect()


def _summary(path, report: dict) -> None:  # noqa: ANN001
    from edgecnn.tables import human

    print(f"{path}")
    print(f"  {report['model']} alpha={report['alpha']:g} resolution={report['resolution']} "
          f"target={report['target']['name']} opset={report['opset']} "
          f"ir={report['ir_version']} {'trained' if report['trained'] else 'untrained'}")
    print(f"  params {report['params']['after']:,}  MACs {human(report['macs']['after'])}")
    for name, f in report["files"].items():
        print(f"  {name:<17} {f['bytes'] / 1e6:7.2f} MB  (zstd {f['zstd_bytes'] / 1e6:.2f} MB)"
              f"  {f['precision']}")
    worst = max(max(p["onnxruntime_max_abs"], p["openvino_max_abs"]) for p in report["parity"])
    print(f"  parity vs PyTorch (ONNX Runtime, OpenVINO): max abs {worst:.1e}")
    if "latency_ms" in report:
        lat = report["latency_ms"]
        print(f"  pruned: {lat['unpruned']:.3f} ms -> {lat['pruned']:.3f} ms "
              f"({lat['speedup']:.2f}x, ONNX Runtime batch 1)")
    int8 = report.get("int8")
    if int8 and int8["final"]["top1_fp32"] is not None:
        final, guard = int8["final"], int8["guard"]
        step = guard["steps"][guard["chosen"]]
        floats = len(int8["float_layers"])
        print(f"  top-1 fp32 {final['top1_fp32']:.2f}%  int8 {final['top1_int8']:.2f}%  "
              f"agreement {final['agreement']:.2f}%  ({step['step']}, {step['method']}"
              f"{', %d float layers' % floats if floats else ''})")
