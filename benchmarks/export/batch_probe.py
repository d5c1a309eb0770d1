"""Export wall time with the batch probe working (evaluation and calibration at batch 16)
against the probe answering "batch 1" (what `onnx_io.batch_dynamic` did from commit 41a66a3
until the session-layer change: it passed a keyword the session factory lacked, and its
`except Exception` turned the TypeError into "keep batch 1").

    python benchmarks/export/batch_probe.py [--repeats 2]

Each run is one fresh process exporting MobileNet alpha 0.5 at 224 px, fp32 + int8, 256
calibration images from mnist5k, the guard on the 1,000 held-out images (the export-time
figure's command); the two variants alternate. Results: batch_probe.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import edgecnn.export.guard as guard, edgecnn.export.onnx_io as onnx_io
import edgecnn.export.quantize as quantize
if sys.argv[1] == "batch-1":
    quantize.batch_dynamic = guard.batch_dynamic = onnx_io.batch_dynamic = lambda proto: None
from edgecnn.export import ExportOptions, export
res = export(ExportOptions("mobilenet", alpha=0.5, num_classes=10, int8=True,
                           calib_data="mnist5k", calib_samples=256, output=sys.argv[2],
                           force=True))
print(json.dumps({"wall_s": time.perf_counter() - t0, "stages_s": res.report["timings_s"],
                  "guard_passed": res.report["int8"]["guard"]["passed"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"batch-16": [], "batch-1": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for variant in runs:
                out = subprocess.run([sys.executable, "-c", CHILD, variant, f"{tmp}/{variant}"],
                                     capture_output=True, text=True, check=True)
                runs[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(variant, runs[variant][-1], flush=True)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                if line.startswith("Model name")), platform.processor())
    import onnxruntime
    import torch

    rows = []
    for variant, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        rows.append(f"| {variant} | {', '.join(f'{w:.1f}' for w in walls)} | "
                    f"{np.median(walls):.1f} | {rs[-1]['stages_s']} | "
                    f"{all(r['guard_passed'] for r in rs)} |")
    text = "\n".join([
        "# Export time: the batch probe working (batch 16) or not (batch 1)", "",
        f"`python benchmarks/export/batch_probe.py --repeats {args.repeats}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU {cpu}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end (a machine shared "
        f"with other work); torch {torch.__version__}, onnxruntime {onnxruntime.__version__}.",
        "", "MobileNet alpha 0.5, 224 px, fp32 + int8, 256 mnist5k calibration images, guard "
        "on 1,000 held-out images; in-process wall time from before `import edgecnn.export` "
        "to the artifact written; variants alternate.", "",
        "| variant | wall s (runs) | median | stages s (last run) | guard passed |",
        "|---|---|---|---|---|", *rows, ""])
    (HERE / "batch_probe.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
