"""A minimal device app: classify a folder of images, or a camera stream when OpenCV is there.

    python deploy/app.py exports/mobilenet-a0.5-r224 --images photos/
    python deploy/app.py exports/mobilenet-a0.5-r224 --camera 0            # needs OpenCV
    python deploy/app.py model.onnx --images photos/ --runtime openvino --threads 2
    python deploy/app.py other.onnx --images photos/ --mean 0.485,0.456,0.406 \
        --std 0.229,0.224,0.225 --labels classes.txt    # a file without edgecnn metadata

Uses only edgecnn.runtime (numpy, Pillow and one runtime; no torch), so it runs on a device
where `pip install edgecnn` (without extras) is all that was installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgecnn.metadata import UNTRAINED_WARNING
from edgecnn.runtime import EdgeCNNError, Model, load
from edgecnn.runtime.flags import add_preprocess_arguments, load_arguments

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def classify_folder(model: Model, folder: Path, topk: int) -> int:
    """One line per image; an unreadable file is one line on stderr and the rest go on.
    Exit status 1 when some failed."""
    if not folder.is_dir():
        raise EdgeCNNError(f"{folder}: no such folder")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not images:
        raise EdgeCNNError(f"{folder}: no images ({', '.join(sorted(SUFFIXES))})")
    total, failed = 0.0, 0
    for path in images:
        start = time.perf_counter()
        try:
            pred = model.predict(path, topk=topk)[0]  # one at a time, as frames would come
        except EdgeCNNError as exc:
            print(f"app: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        total += time.perf_counter() - start
        top = ", ".join(f"{label} {prob:.1%}" for label, prob in zip(pred.labels, pred.probs))
        print(f"{path.name}  {top}", flush=True)
    done = len(images) - failed
    if not done:
        raise EdgeCNNError(f"{folder}: none of the {len(images)} images could be read")
    print(f"{done} images, {1000 * total / done:.1f} ms per image "
          f"(decode + preprocess + inference) on {model.describe()}"
          + (f"; {failed} could not be read" if failed else ""))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="artifact directory or .onnx file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder of images")
    source.add_argument("--camera", type=int, nargs="?", const=0, help="camera index (OpenCV)")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--topk", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    parser.add_argument("--frames", type=int, default=None, help="stop the camera after N")
    parser.add_argument("--headless", action="store_true", help="print instead of a window")
    add_preprocess_arguments(parser)
    args = parser.parse_args(argv)
    options = {"threads": args.threads} if args.threads is not None else {}
    try:
        with load(args.artifact, runtime=args.runtime, device=args.device,
                  **load_arguments(args), **options) as model:
            print(f"# {model.describe()} [{model.selection}]", file=sys.stderr)
            if model.metadata is not None and not model.metadata.trained:
                print(f"app: warning: {UNTRAINED_WARNING}", file=sys.stderr)
            if args.images is not None:
                return classify_folder(model, args.images, args.topk)
            return classify_camera(model, args.camera, args.frames, args.headless)
    except EdgeCNNError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
