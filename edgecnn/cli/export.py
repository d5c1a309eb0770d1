"""`edgecnn export`: a zoo model, an import path, a checkpoint or an ONNX file to an artifact.

The flags build one `ExportSpec` (edgecnn/export/spec.py), as the pipeline recipe does: the
defaults live there, so options the user leaves out are None here and are not passed on.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edgecnn.cli.args import (IMAGEFOLDER_HELP,
    add_no_progress,
    alpha_arg,
    non_negative_float,
    non_negative_int,
    open_ratio,
    positive_int,
)
from edgecnn.runtime.flags import channel_values

ORDER = 30  # after train/eval in `edgecnn --help`


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export to ONNX: pruning, int8 with an accuracy guard, fp16",
        description="Export MODEL (a zoo name or an import path package.module:callable: "
        "initialized weights, for latency work), CHECKPOINT (from `edgecnn train`: rebuilt "
        "from it alone) or FILE.onnx (a classifier from another tool) to a directory with "
        "model.onnx, model.int8.onnx / model.fp16.onnx when asked, and export.json.")
    p.add_argument("source", metavar="MODEL|CHECKPOINT|FILE.onnx",
                   help="zoo name, import path, checkpoint (.pt), run directory (its best.pt) "
                   "or ONNX file")
    p.add_argument("--alpha", type=alpha_arg, help="width multiplier (zoo models; default 1)")
    p.add_argument("--resolution", type=positive_int,
                   help="input side in pixels (default: the model's, the checkpoint's or the "
                   "ONNX file's; needed for an ONNX file with a dynamic input size)")
    p.add_argument("--num-classes", type=positive_int, help="zoo models (default: the model's)")
    p.add_argument("--mean", type=channel_values, metavar="R,G,B",
                   help="ONNX files without edgecnn metadata: normalization mean, 0-1 scale "
                   "(default: the file's metadata)")
    p.add_argument("--std", type=channel_values, metavar="R,G,B",
                   help="ONNX files without edgecnn metadata: normalization std, 0-1 scale "
                   "(default: the file's metadata)")
    p.add_argument("--labels", metavar="FILE",
                   help="ONNX files: class names, one per line (default 0..N-1)")
    p.add_argument("--target", help="recipe name in export/ (cpu-x86, cpu-arm, tensorrt, "
                   "jetson-orin, jetson-nano) or a path to a YAML recipe (default cpu-x86)")
    p.add_argument("--prune", type=open_ratio, metavar="RATIO",
                   help="structured: share of MACs to remove; unstructured: share of weights "
                   "(default: no pruning)")
    p.add_argument("--prune-method", choices=("structured", "unstructured"),
                   help="default structured")
    p.add_argument("--prune-round-to", type=positive_int, metavar="N",
                   help="structured: every pruned layer keeps a multiple of N channels "
                   "(torch-pruning's round_to: each step's count rounded, so a width can end "
                   "above or below the unrounded pruning's; SIMD kernels work in blocks "
                   "of 8); the report splits the speedup into what removal and what rounding "
                   "bought. 1: no rounding (default 8)")
    p.add_argument("--finetune-epochs", type=non_negative_int, metavar="E",
                   help="fine-tune after pruning on the checkpoint's data set (default 0)")
    p.add_argument("--prune-steps", type=positive_int, metavar="N",
                   help="unstructured: reach RATIO in N prune + fine-tune steps (iterative, "
                   "as Deep Compression; --finetune-epochs each; default 1)")
    p.add_argument("--finetune-optimizer", choices=("sgd", "adamw"),
                   help="fine-tuning's optimizer, at a tenth of its from-scratch learning "
                   "rate: sgd 0.01 (default), adamw 2e-4 (for models trained with AdamW, "
                   "such as SqueezeNet's recipe)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx (static QDQ, per-channel weights)")
    p.add_argument("--calib-data", metavar="DATA",
                   help="data set to calibrate on (train split) and to check accuracy on (val "
                   "split); `random` for latency-only int8 (default: none). "
                   + IMAGEFOLDER_HELP)
    p.add_argument("--calib-samples", type=positive_int, metavar="N",
                   help="calibration images (default 256)")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"),
                   help="first calibration method to try (default: the target's)")
    p.add_argument("--max-drop", type=non_negative_float, metavar="PTS",
                   help="top-1 points int8 may lose before the guard steps in (default 1.0)")
    p.add_argument("--min-agreement", type=non_negative_float, metavar="PCT",
                   help="when the model's classes are not the data's: the int8/fp32 top-1 "
                   "agreement the guard requires (default 99)")
    p.add_argument("--int8-blocks", choices=("all", "auto"),
                   help="all: every block int8 (float only where the accuracy guard says), "
                   "written whatever its speed; auto: blocks slower in int8 on this machine "
                   "stay float, and no int8 file where int8 is faster nowhere (cpu-x86; "
                   "default all)")
    p.add_argument("--qat-epochs", type=non_negative_int, metavar="E",
                   help="quantization-aware training as the guard's last step (default 0)")
    p.add_argument("--fp16", action="store_true",
                   help="also write model.fp16.onnx (GPU targets; float32 inputs and outputs); "
                   "with --int8, the artifact holds fp32, fp16 and int8")
    p.add_argument("--opset", type=positive_int, metavar="K",
                   help="ONNX opset (default: the target's)")
    p.add_argument("--dynamic-batch", action="store_true", help="a dynamic batch dimension")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="artifact directory (default exports/MODEL-aALPHA-rRES)")
    p.add_argument("--force", action="store_true", help="replace an existing export")
    p.add_argument("--round-channels", type=positive_int, default=None, metavar="N",
                   help="zoo MobileNet v1: round every width to a multiple of N (8: "
                   "torchvision's _make_divisible) instead of the paper's truncation (default: "
                   "the paper's)")
    add_no_progress(p, "elapsed-time line beside the current stage")
    p.add_argument("--json", action="store_true",
                   help="print export.json's report instead of the summary")
    p.set_defaults(func=run_export)


def spec_from_args(args: argparse.Namespace):  # noqa: ANN201 - ExportSpec, imported lazily
    """The command line as an ExportSpec; flags that belong to an option not asked for
    (--max-drop without --int8) are errors, not ignored."""
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export.spec import ExportSpec, Int8Spec, PruneSpec, source_from_text

    def given(**kwargs: object) -> dict[str, object]:
        return {k: v for k, v in kwargs.items() if v is not None}

    int8_flags = given(calib_samples=args.calib_samples, calib_method=args.calib_method,
                       max_drop=args.max_drop, min_agreement=args.min_agreement,
                       qat_epochs=args.qat_epochs, blocks=args.int8_blocks)
    if args.int8:
        if not args.calib_data:
            raise EdgeCNNError("--int8 needs --calib-data DATA (real images to calibrate on), "
                               "or --calib-data random for latency-only work")
        int8 = Int8Spec(args.calib_data, **int8_flags)
    else:
        stray = [f"--{'int8-blocks' if k == 'blocks' else k.replace('_', '-')}"
                 for k in int8_flags] + \
            (["--calib-data"] if args.calib_data else [])
        if stray:  # a forgotten --int8, not something to ignore
            raise EdgeCNNError(f"{stray[0]} applies to --int8 only")
        int8 = None
    prune_flags = given(method=args.prune_method, finetune_epochs=args.finetune_epochs,
                        round_to=args.prune_round_to,
                        finetune_optimizer=args.finetune_optimizer, steps=args.prune_steps)
    if args.prune is None and prune_flags:
        flag = {"method": "--prune-method", "round_to": "--prune-round-to",
                "finetune_optimizer": "--finetune-optimizer",
                "steps": "--prune-steps"}.get(
            next(iter(prune_flags)), "--finetune-epochs")
        raise EdgeCNNError(f"{flag} needs --prune")
    if args.finetune_optimizer is not None and not args.finetune_epochs:
        raise EdgeCNNError("--finetune-optimizer needs --finetune-epochs E (E > 0)")
    if args.prune_round_to is not None and args.prune_method == "unstructured":
        raise EdgeCNNError("--prune-round-to applies to structured pruning (unstructured "
                           "pruning keeps every channel)")
    prune = PruneSpec(args.prune, **prune_flags) if args.prune is not None else None
    source = source_from_text(args.source, alpha=args.alpha, resolution=args.resolution,
                              num_classes=args.num_classes, mean=args.mean, std=args.std,
                              labels=args.labels, round_channels=args.round_channels)
    return ExportSpec(source, prune=prune, int8=int8, fp16=args.fp16, opset=args.opset,
                      dynamic_batch=args.dynamic_batch, output=args.output, force=args.force,
                      **given(target=args.target))


def run_export(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from edgecnn.cli import interrupted
    from edgecnn.export import export

    if Path(args.source).is_dir() and (Path(args.source) / "best.pt").is_file():
        args.source = str(Path(args.source) / "best.pt")  # a run directory of edgecnn train
        print(f"edgecnn: exporting the run's best checkpoint, {args.source}", file=sys.stderr)
    spec = spec_from_args(args)
    # --json: stdout is the JSON alone (torch's exporters print there, from C++ too)
    from edgecnn.progress import Ticker, quiet

    quiet(args.no_progress)
    # the elapsed time beside the current stage (calibration, the guard: waits of minutes)
    try:
        with _stdout_to_stderr() if args.json else contextlib.nullcontext(), \
                Ticker("export") as ticker:
            result = export(spec, log=lambda line: _log(ticker, line))
    except (KeyboardInterrupt, ImportError) as exc:  # the artifact is whole or absent
        if not interrupted(exc):
            raise  # an install problem: main says which package
        print("edgecnn: interrupted; an export does not resume: the same command starts it "
              "over", file=sys.stderr)
        return 130
    if args.json:
        import json

        print(json.dumps({"path": str(result.path), **result.report}, indent=2, default=str))
        return 0
    _summary(result.path, result.report)
    aligned = result.report.get("channel_alignment")
    if aligned:
        print(f"edgecnn: warning: {aligned['warning']}", file=sys.stderr)
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


def _log(ticker: Any, line: str) -> None:
    """Export's lines: a "stage: ..." line names the wait on the ticker (a terminal only: in a
    log file or a test's stderr it would be noise between the results); the rest are printed."""
    if line.startswith("stage: "):
        ticker.stage(f"export: {line.removeprefix('stage: ')}")
    else:
        ticker.write(f"edgecnn: {line}")


def _summary(path, report: dict) -> None:  # noqa: ANN001
    from edgecnn.tables import human

    print(f"{path}")
    print(f"  {report['model']} alpha={report['alpha']:g} resolution={report['resolution']} "
          f"target={report['target']['name']} opset={report['opset']} "
          f"ir={report['ir_version']} {'trained' if report['trained'] else 'untrained'}")
    print(f"  params {report['params']['after']:,}  MACs {human(report['macs']['after'])}")
    if "onnx_file" in report:
        f = report["onnx_file"]
        done = [text for key, text in (("softmax_removed", "final Softmax taken off"),
                                       ("output_flattened", "(N, C, 1, 1) output flattened"))
                if f.get(key)]
        if f.get("layout_in") == "NHWC":
            done.append("NHWC input transposed")
        if f.get("batch_fixed"):
            done.append(f"batch axis {f['batch_fixed']} fixed to 1 (--dynamic-batch keeps it "
                        "free)")
        print(f"  from {f['file']}: opset {f['opset_in']} -> {f['opset']}, IR "
              f"{f['ir_version_in']} -> {f['ir_version']}{'; ' + ', '.join(done) if done else ''}")
    pruning = report.get("pruning") or {}
    for layer in pruning.get("unpruned", []):
        print(f"  not pruned: {layer['layer']} ({layer['reason']})")
    for name, f in report["files"].items():
        print(f"  {name:<17} {f['bytes'] / 1e6:7.2f} MB  (zstd {f['zstd_bytes'] / 1e6:.2f} MB)"
              f"  {f['precision']}")
    worst = max(v for p in report["parity"] for v in (p["onnxruntime_max_abs"],
                                                      p["openvino_max_abs"]) if v is not None)
    against = "the original file" if "onnx_file" in report else "PyTorch"
    checked = ("ONNX Runtime, OpenVINO" if all(p["openvino_max_abs"] is not None
                                               for p in report["parity"])
               else "ONNX Runtime; OpenVINO not installed, not checked")
    print(f"  parity vs {against} ({checked}): max abs {worst:.1e}")
    if "latency_ms" in report:
        lat = report["latency_ms"]
        print(f"  pruned: {lat['unpruned']:.3f} ms -> {lat['pruned']:.3f} ms "
              f"({lat['speedup']:.2f}x, ONNX Runtime batch 1)")
    for line in alignment_lines(report):
        print(f"    {line}")
    stages = top1_stages(report)
    if stages:
        data = (report.get("pruning") or report).get("accuracy_data") or \
            (report.get("data") or {}).get("calibration")
        print(f"  top-1{' on ' + str(data) + ' (held out)' if data else ''}: "
              + ", ".join(f"{name} {value:.2f}%" for name, value in stages))
    int8 = report.get("int8")
    if int8 and not int8["written"]:
        print(f"  int8 not written: {int8['reason']}")
    elif int8 and int8.get("criterion") == "agreement" and int8["final"]["agreement"] is not None:
        print(f"  int8 top-1 agreement with fp32 {int8['final']['agreement']:.2f}% on held-out "
              f"images (the model's classes are not the data's)")
    elif int8 and int8["final"]["top1_fp32"] is not None:
        final, guard = int8["final"], int8["guard"]
        step = guard["steps"][guard["chosen"]]
        floats = len(int8["float_layers"])
        simulated = guard.get("int8_arithmetic") == "simulated"  # export/guard.py
        shown = dict(stages).get("model.int8.onnx") is not None  # the line above has both
        scores = "" if shown else (f"top-1 fp32 {final['top1_fp32']:.2f}%, int8 "
                                   f"{final['top1_int8']:.2f}%, ")
        print(f"  int8: {scores}agreement with fp32 {final['agreement']:.2f}% "
              f"({step['step']}, {step['method']}"
              f"{', %d float layers' % floats if floats else ''}"
              f"{'; int8 scored as Q/DQ ops' if simulated else ''})")


def alignment_lines(report: dict) -> list[str]:
    """Structured pruning's MACs and latency split into what removing channels bought (the
    unpruned model against the same target pruned without rounding) and what rounding the
    kept channels to multiples of round_to bought (unrounded against rounded)."""
    from edgecnn.tables import human

    pruning = report.get("pruning") or {}
    aligned = pruning.get("alignment")
    if not aligned:
        return []
    n = aligned["round_to"]
    if "skipped" in aligned:
        return [f"what rounding to multiples of {n} bought is not measured: {aligned['skipped']}"]
    lat = report.get("latency_ms") or {}
    ms = {k: f", {lat[a]:.3f} ms -> {lat[b]:.3f} ms ({lat[s]:.2f}x)" if s in lat else ""
          for k, a, b, s in (("removal", "unpruned", "pruned_unrounded", "speedup_removal"),
                             ("alignment", "pruned_unrounded", "pruned", "speedup_alignment"))}
    changed = aligned["channels"]
    pairs = sorted({(a, b) for a, b in changed.values()})
    shown = ", ".join(f"{a}->{b}" for a, b in pairs[:8]) + (", ..." if len(pairs) > 8 else "")
    return [f"removal (channels as ranked, unrounded): MACs {human(pruning['macs_before'])} -> "
            f"{human(aligned['macs_unrounded'])}{ms['removal']}",
            f"alignment (rounded to multiples of {n}): MACs {human(aligned['macs_unrounded'])}"
            f" -> {human(aligned['macs_rounded'])}{ms['alignment']}; {len(changed)} layers "
            f"changed{' (' + shown + ')' if changed else ''}"]


def top1_stages(report: dict) -> list[tuple[str, float]]:
    """(stage, top-1 %) for every stage export.json has a figure for, in order: before
    pruning, after pruning, after fine-tuning, the fp32 file, the int8 file."""
    out: list[tuple[str, float]] = []
    pruning = report.get("pruning") or {}
    int8 = report.get("int8") or {}
    final = int8.get("final") or {}
    if pruning:
        out.append(("before pruning", pruning.get("top1_before")))
        steps = len(pruning.get("steps") or [1])
        each = f" (step {steps} of {steps})" if steps > 1 else ""
        out.append((f"after pruning{each}", pruning.get("top1_pruned")))
        if pruning.get("finetune_epochs"):
            n = pruning["finetune_epochs"]
            out.append((f"after fine-tuning ({n} epoch{'' if n == 1 else 's'}"
                        + (f" x {steps} steps)" if steps > 1 else ")"),
                        pruning.get("top1_after")))
    else:
        out.append(("model.onnx", report.get("top1_fp32", final.get("top1_fp32"))))
    if int8.get("written", False) and final.get("top1_int8") is not None:
        out.append(("model.int8.onnx", final["top1_int8"]))
    return [(name, value) for name, value in out if value is not None]
