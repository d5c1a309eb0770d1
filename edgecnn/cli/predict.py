"""`edgecnn predict ARTIFACT IMAGE...`: classify images with the torch-free runtime.

Imports only edgecnn.runtime (never torch), so it starts fast and works on a device where
only the runtime is installed. The runtime's choice goes to stderr, the predictions to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecnn.cli.args import (add_preprocess_flags, add_remote_flags, positive_int,
                              preprocess_kwargs, remote_kwargs)
from edgecnn.runtime.folders import labelled_images, print_score, score

ORDER = 40  # after the zoo, training and export commands in `edgecnn --help`



def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="classify images with an exported artifact (torch-free runtime)")
    p.add_argument("artifact", help="artifact directory (model.onnx + export.json) or .onnx file")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, or directories: their images, sorted, searched through "
                   "subfolders; a directory whose subfolders are the model's class names "
                   "(DIR/cat/1.jpg, DIR/dog/2.jpg: an imagefolder's val/ or test/) is also "
                   "scored: per-class and overall top-1")
    p.add_argument("--runtime", default="auto",
                   choices=("auto", "onnxruntime", "openvino", "tensorrt", "fastest"))
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda[:N], or an OpenVINO device (GPU, NPU)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="which file of an artifact directory (default: model.onnx)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_preprocess_flags(p)
    add_remote_flags(p, several=False)
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from edgecnn.errors import EdgeCNNError
    from edgecnn.metadata import UNTRAINED_WARNING
    from edgecnn.runtime import load
    from edgecnn.runtime.stage import describe_stage

    labelled = labelled_images(args.images)
    images = [image for image, _ in labelled]
    if args.remote:  # on the device, the images sent with the request
        from edgecnn.remote.run import remote_predict

        if not images:
            raise EdgeCNNError("no images found in the given directories")
        argv = ["--runtime", args.runtime, "--device", args.device, "--topk", str(args.topk)]
        argv += (["--precision", args.precision] if args.precision else []) + \
            (["--json"] if args.json else [])
        if preprocess_kwargs(args):
            raise EdgeCNNError("--remote predicts with an artifact's own preprocessing")
        out = remote_predict(args.remote, args.artifact, images, argv,
                             log=lambda line: print(f"edgecnn: {line}", file=sys.stderr),
                             **remote_kwargs(args))
        sys.stdout.write(out.decode(errors="replace"))
        return 0
    with load(args.artifact, runtime=args.runtime, device=args.device,
              precision=args.precision, **preprocess_kwargs(args)) as model:
        # the file too: model.onnx or model.int8.onnx (or a tuned one) answers below
        print(f"edgecnn: {model.path.name} in {model.describe()} [{model.selection}]",
              file=sys.stderr)
        if model.metadata is not None and not model.metadata.trained:
            print(f"edgecnn: warning: {UNTRAINED_WARNING}", file=sys.stderr)
        if not images:
            raise EdgeCNNError("no images found in the given directories")
        results = classify(model, images, args.topk)
        failed = [(image, r) for image, r in results if isinstance(r, str)]
        if len(images) == 1 and failed:  # one image: its error is the command's one line
            raise EdgeCNNError(failed[0][1])
        for _, message in failed:  # one line per unreadable file; the good ones still count
            print(f"edgecnn: error: {message}", file=sys.stderr)
        good = [(image, r) for image, r in results if not isinstance(r, str)]
        if args.json:
            meta = model.metadata
            out = {"artifact": args.artifact, "runtime": model.runtime,
                   "runtime_detail": model.describe(), "model": meta.model if meta else None,
                   "predictions": [{"image": str(im), **p.to_dict()} for im, p in good],
                   "errors": [{"image": str(im), "error": m} for im, m in failed]}
        scored = score(results, dict(labelled), model.classes)
        if args.json:
            if scored is not None:
                out["accuracy"] = {**scored, "stage": describe_stage(model.path)}
            print(json.dumps(out, indent=2))
        else:
            for image, pred in good:
                print(image)
                for i, label, prob in zip(pred.ids, pred.labels, pred.probs):
                    print(f"  {prob:7.2%}  {i:>5}  {label}")
            if scored is not None:
                print_score(scored, describe_stage(model.path))
    if failed and not good:
        raise EdgeCNNError(f"none of the {len(images)} images could be read")
    if failed:
        print(f"edgecnn: {len(failed)} of {len(images)} images could not be read",
              file=sys.stderr)
        return 1
    return 0


def classify(model, images: list[Path], topk: int) -> list[tuple[Path, object]]:  # noqa: ANN001
    """(image, Prediction or its one-line error) per image: batches of 32, and a batch with
    a bad file again image by image, so that one bad file costs only itself."""
    from edgecnn.errors import EdgeCNNError

    out: list[tuple[Path, object]] = []
    for start in range(0, len(images), 32):
        chunk = images[start:start + 32]
        try:
            out.extend(zip(chunk, model.predict(chunk, topk=topk)))
            continue
        except EdgeCNNError:
            pass
        for image in chunk:
            try:
                out.append((image, model.predict(image, topk=topk)[0]))
            except EdgeCNNError as exc:
                out.append((image, str(exc)))
    return out


def expand_images(paths: list[str]) -> list[Path]:
    """Files as given (bad ones fail later, by name); directories give their images,
    subfolders included (an image folder's class folders)."""
    return [image for image, _ in labelled_images(paths)]
