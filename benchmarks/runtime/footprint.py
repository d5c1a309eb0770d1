"""Footprint of the torch-free runtime: a fresh process that imports it, loads MobileNet
alpha 0.5 (224) and classifies one photo - peak resident memory and wall time - next to the
same work done with bare ONNX Runtime, `import torch` alone, and an empty interpreter.

    python benchmarks/runtime/footprint.py                 # exports the model first (torch)
    python benchmarks/runtime/footprint.py --artifact exports/mobilenet-a0.5-r224 --repeat 20

Each scenario is its own `python -c` process (edgecnn.timing.footprint.run_fresh, the
measurement `edgecnn bench` reports a model's footprint with); wall time is measured from
just before the fork to the child's exit. Peak resident memory is the child's own high-water mark (VmHWM of
/proc/self/status, read as its last statement): Linux carries the parent's resident size at
fork into a child's ru_maxrss, so ru_maxrss (from os.wait4) is recorded too but is floored at
this measuring process's size (kept small: the export runs in a subprocess of its own). Rounds are
interleaved (every scenario once per round, order rotated) so that a machine whose load
drifts does not favour one side, and one untimed round first warms the page cache and
writes bytecode caches (as an installed package has them). Medians are reported with the
spread; ratios are to bare ONNX Runtime measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's edgecnn (its fresh-process measurement)

SCENARIOS = {
    # The runtime as a device app uses it.
    "edgecnn.runtime": """
import sys
from edgecnn.runtime import load
model = load(sys.argv[1], runtime="onnxruntime", device="cpu")
print(model.predict(sys.argv[2], topk=5)[0].id)
""",
    # The same work written directly against ONNX Runtime, Pillow and numpy.
    "bare onnxruntime": """
import sys
import numpy as np, onnxruntime as ort
from PIL import Image
session = ort.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
image = Image.open(sys.argv[2]).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
x = (np.asarray(image, np.float32) / 255 - np.float32([0.485, 0.456, 0.406])) \\
    / np.float32([0.229, 0.224, 0.225])
logits = session.run(None, {"input": x.transpose(2, 0, 1)[None].copy()})[0]
print(int(logits.argmax()))
""",
    "import torch": "import torch",
    "empty interpreter": "pass",
}
TARGETS = {"rss_mb": 90.0, "wall_s": 0.4}  # for edgecnn.runtime (the runtime issue)


def export_mobilenet(directory: Path) -> Path:
    """MobileNet alpha 0.5 at 224 with BatchNorm statistics from a batch (no denormals)."""
    import torch

    from edgecnn.export.onnx_io import save_onnx, to_onnx_proto
    from edgecnn.metadata import ArtifactMetadata
    from edgecnn.registry import create_model, get_spec

    torch.manual_seed(0)
    model = create_model("mobilenet", alpha=0.5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 224, 224))
    model.eval()
    proto = to_onnx_proto(model, torch.randn(1, 3, 224, 224))
    spec = get_spec("mobilenet")
    meta = ArtifactMetadata(model="mobilenet", alpha=0.5, resolution=224, in_chans=3,
                            mean=spec.mean, std=spec.std,
                            classes=tuple(f"class {i}" for i in range(1000)))
    for key, value in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    directory.mkdir(parents=True, exist_ok=True)
    save_onnx(proto, directory / "model.onnx")
    return directory


def measure(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall seconds, own peak RSS MB, ru_maxrss MB, stdout) of one fresh interpreter: the
    package's own measurement (edgecnn/timing/footprint.py), which bench uses too."""
    from edgecnn.errors import EdgeCNNError
    from edgecnn.timing.footprint import run_fresh

    try:
        return run_fresh(code, args, env=env, cwd=ROOT)
    except EdgeCNNError as exc:
        raise SystemExit(f"scenario failed:\n{code}\n{exc}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, help="MobileNet alpha 0.5 (224) artifact dir")
    parser.add_argument("--image", type=Path, help="default: scikit-learn's china.jpg")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("-o", "--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--export-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_to is not None:  # the subprocess that exports (torch stays out of here)
        export_mobilenet(args.export_to)
        return
    tmp = tempfile.TemporaryDirectory()
    artifact = args.artifact
    if artifact is None:
        artifact = Path(tmp.name) / "mobilenet-a0.5-r224"
        subprocess.run([sys.executable, __file__, "--export-to", str(artifact)], check=True)
    if args.image is None:  # found without importing scikit-learn (see the docstring)
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("pass --image (scikit-learn's sample photo is not installed)")
        args.image = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / "china.jpg"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    child_args = [str(artifact), str(args.image)]

    names = list(SCENARIOS)
    for name in names:  # untimed: page cache, .pyc files
        measure(SCENARIOS[name], child_args, env)
    samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    answers = set()
    load_before = os.getloadavg()
    for round_ in range(args.repeat):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            wall, rss, maxrss, out = measure(SCENARIOS[name], child_args, env)
            samples[name].append((wall, rss, maxrss))
            if out:
                answers.add(out)
    if len(answers) != 1:  # both classifiers must give the same class
        raise SystemExit(f"the runtime and bare ONNX Runtime disagree: {answers}")

    results = {}
    for name in names:
        walls, rsss = [s[0] for s in samples[name]], [s[1] for s in samples[name]]
        results[name] = {"wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
                         "wall_s_max": max(walls), "rss_mb_peak_median": statistics.median(rsss),
                         "rss_mb_peak_max": max(rsss),
                         "ru_maxrss_mb_median": statistics.median(s[2] for s in samples[name])}
    bare, ours = results["bare onnxruntime"], results["edgecnn.runtime"]
    record = {
        "command": "python benchmarks/runtime/footprint.py" + (
            f" --repeat {args.repeat}" if args.repeat != 15 else ""),
        "model": "mobilenet alpha 0.5, 224x224, fp32 ONNX (opset 18), batch 1",
        "image": args.image.name,
        "repeat": args.repeat,
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                    "loadavg_1m_before": round(load_before[0], 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2),
                    "measuring_process_rss_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                    "python": platform.python_version()},
        "versions": _versions(),
        "results": results,
        "ratios_to_bare_onnxruntime": {
            "wall": ours["wall_s_median"] / bare["wall_s_median"],
            "rss": ours["rss_mb_peak_median"] / bare["rss_mb_peak_median"]},
        "targets": {"edgecnn.runtime": TARGETS,
                    "met": {"rss_mb": ours["rss_mb_peak_max"] <= TARGETS["rss_mb"],
                            "wall_s": ours["wall_s_median"] <= TARGETS["wall_s"]}},
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))


def markdown(record: dict) -> str:
    """The results as the table committed next to the JSON."""
    m, rows = record["machine"], []
    bare = record["results"]["bare onnxruntime"]
    for name, r in record["results"].items():
        rows.append(f"| {name} | {r['wall_s_median']:.3f} ({r['wall_s_min']:.3f}-"
                    f"{r['wall_s_max']:.3f}) | {r['wall_s_median'] / bare['wall_s_median']:.2f}x "
                    f"| {r['rss_mb_peak_median']:.1f} (max {r['rss_mb_peak_max']:.1f}) | "
                    f"{r['rss_mb_peak_median'] / bare['rss_mb_peak_median']:.2f}x |")
    met = record["targets"]["met"]
    return "\n".join([
        f"Command: `{record['command']}`  ",
        f"Work: {record['model']}; classify `{record['image']}` (top-5) in a fresh process.  ",
        f"Machine: {m['cpu']}, {m['cores']} cores, load average {m['loadavg_1m_before']} before "
        f"and {m['loadavg_1m_after']} after (1 min); Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + ".  ",
        f"{record['repeat']} interleaved rounds; wall time median (min-max), peak RSS median.",
        "",
        "| process | wall s | vs bare ORT | peak RSS MB | vs bare ORT |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Targets for edgecnn.runtime: peak RSS <= {TARGETS['rss_mb']:.0f} MB: "
        f"{'met' if met['rss_mb'] else 'NOT met'}; wall time <= {TARGETS['wall_s']} s: "
        f"{'met' if met['wall_s'] else 'NOT met'} on this run.",
        "",
    ])


def _cpu_model() -> str:
    from edgecnn.host import cpu_model  # in the measuring process only, after the scenarios

    return cpu_model()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("onnxruntime", "numpy", "pillow", "torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


if __name__ == "__main__":
    main()
