"""The device app: classify a folder of images, or a camera stream when OpenCV is there.

    edgecnn app exports/mobilenet-a0.5-r224 --images photos/
    python -m edgecnn.app exports/mobilenet-a0.5-r224 --camera 0        # needs OpenCV
    edgecnn app model.onnx --images photos/ --runtime openvino --threads 2
    edgecnn app other.onnx --images photos/ --mean 0.485,0.456,0.406 \
        --std 0.229,0.224,0.225 --labels classes.txt    # a file without edgecnn metadata

Uses only edgecnn.runtime (numpy, Pillow and one runtime; no torch), so it runs on a device
where `pip install edgecnn` (without extras) is all that was installed. A folder whose
subfolders are the model's class names is also scored (per class and overall), naming the
file and export stage the figure belongs to. deploy/app.py in the repository is the same
app, as an example to copy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgecnn.metadata import UNTRAINED_WARNING
from edgecnn.runtime import EdgeCNNError, Model, load
from edgecnn.runtime.flags import add_preprocess_arguments, load_arguments
from edgecnn.runtime.folders import IMAGE_SUFFIXES, labelled_images, print_score, score
from edgecnn.runtime.stage import describe_stage


def classify_folder(model: Model, folder: Path, topk: int, as_json: bool = False) -> int:
    """One line per image (as_json: one JSON object at the end); an unreadable file is one
    line on stderr and the rest go on. Exit status 1 when some failed."""
    if not folder.is_dir():
        raise EdgeCNNError(f"{folder}: no such folder")
    labelled = labelled_images([str(folder)])  # class folders included
    images = [image for image, _ in labelled]
    if not images:
        raise EdgeCNNError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    total, failed = 0.0, 0
    results: list[tuple[Path, object]] = []
    for path in images:
        start = time.perf_counter()
        try:
            pred = model.predict(path, topk=topk)[0]  # one at a time, as frames would come
        except EdgeCNNError as exc:
            print(f"app: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        total += time.perf_counter() - start
        results.append((path, pred))
        if not as_json:
            top = ", ".join(f"{label} {prob:.1%}" for label, prob in zip(pred.labels,
                                                                          pred.probs))
            print(f"{path.relative_to(folder)}  {top}", flush=True)
    done = len(images) - failed
    if not done:
        raise EdgeCNNError(f"{folder}: none of the {len(images)} images could be read")
    scored = score(results, dict(labelled), model.classes)
    if as_json:
        print(json.dumps({
            "artifact": str(model.path), "runtime": model.describe(), "images": done,
            "failed": failed, "ms_per_image": 1000 * total / done,
            "predictions": [{"image": str(im), **p.to_dict()} for im, p in results],
            "accuracy": None if scored is None else {**scored,
                                                     "stage": describe_stage(model.path)}},
            indent=2))
        return 1 if failed else 0
    print(f"{done} images, {1000 * total / done:.1f} ms per image "
          f"(decode + preprocess + inference) on {model.describe()}"
          + (f"; {failed} could not be read" if failed else ""))
    if scored is not None:
        print_score(scored, describe_stage(model.path))
    return 1 if failed else 0


def classify_camera(model: Model, index: int, frames: int | None, headless: bool) -> int:
    try:
        import cv2
    except ImportError:
        raise EdgeCNNError("camera mode needs OpenCV: pip install opencv-python "
                           "(or opencv-python-headless with --headless)") from None
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise EdgeCNNError(f"cannot open camera {index}")
    seen, start = 0, time.perf_counter()
    try:
        while frames is None or seen < frames:
            ok, frame = capture.read()
            if not ok:
                break
            pred = model.predict(frame[:, :, ::-1], topk=1)[0]  # OpenCV gives BGR
            seen += 1
            fps = seen / (time.perf_counter() - start)
            text = f"{pred.label} {pred.prob:.0%}  {fps:.1f} fps"
            if headless:
                print(text, flush=True)
                continue
            cv2.putText(frame, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 0), 2)
            cv2.imshow("edgecnn", frame)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):  # q or Esc
                break
    except KeyboardInterrupt:
        pass
    finally:
        capture.release()
        if not headless:
            cv2.destroyAllWindows()
    print(f"{seen} frames on {model.describe()}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The app's options (`python -m edgecnn.app` and `edgecnn app` alike)."""
    parser.add_argument("artifact", help="artifact directory or .onnx file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder of images, class folders "
                        "included (default: --camera)")
    source.add_argument("--camera", type=int, nargs="?", const=0,
                        help="camera index (OpenCV) (default: --images; 0 when given bare)")
    parser.add_argument("--runtime", default="auto",
                        help="auto, onnxruntime, openvino, tensorrt or fastest")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or an "
                        "OpenVINO device")
    parser.add_argument("--topk", type=int, default=3, help="classes per image")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for inference (default: the runtime's, every core)")
    parser.add_argument("--frames", type=int, default=None,
                        help="stop the camera after N (default: until q, Esc or Ctrl-C)")
    parser.add_argument("--headless", action="store_true", help="print instead of a window")
    parser.add_argument("--json", action="store_true",
                        help="--images: print one JSON object (predictions, accuracy)")
    add_preprocess_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    options = {"threads": args.threads} if args.threads is not None else {}
    try:
        with load(args.artifact, runtime=args.runtime, device=args.device,
                  **load_arguments(args), **options) as model:
            print(f"# {model.describe()} [{model.selection}]", file=sys.stderr)
            if model.metadata is not None and not model.metadata.trained:
                print(f"app: warning: {UNTRAINED_WARNING}", file=sys.stderr)
            if args.images is not None:
                return classify_folder(model, args.images, args.topk, args.json)
            return classify_camera(model, args.camera, args.frames, args.headless)
    except EdgeCNNError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
