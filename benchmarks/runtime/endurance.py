"""Endurance of the runtime as a device app lives on it: one process, one Model, 20,000
`Model.predict` calls on image files, resident memory and latency watched throughout; then
four threads sharing that Model against serial calls.

    python benchmarks/runtime/endurance.py                        # exports the model first
    python benchmarks/runtime/endurance.py --calls 20000 --artifact exports/mnv1-a0.25-r32

The model is MobileNet v1 alpha 0.25 at 32 px (`edgecnn export mobilenet --alpha 0.25
--resolution 32`, in a subprocess: this process never imports torch), the images 200 small
files (JPEG, PNG, RGBA PNG, grayscale; 48-96 px) written once and cycled, one file per call
as frames come. Warm-up is the first 1,000 calls. Criteria: resident memory (VmRSS) after
warm-up grows by at most 2 MB to the end, and the p99 latency of the last 1,000 calls is
within 10% of the first 1,000 after warm-up. Latency is wall time (perf_counter) and, as a
drift measure that a busy machine's scheduling does not inflate, process CPU time per call
(ONNX Runtime with one thread). Threads: 4 threads x the 200 files x 5, each
result compared with the serial call on the same file.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.host import cpu_model

HERE = Path(__file__).resolve().parent
WARMUP = 1000
WINDOW = 1000


def rss_mb() -> float:
    """This process's resident set (VmRSS), MB = 10^6 bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS in /proc/self/status")


def write_images(folder: Path, n: int = 200) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(48, 97)), int(rng.integers(48, 97))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels)
        kind = i % 4
        path = folder / f"{i:03d}.{'jpg' if kind == 0 else 'png'}"
        if kind == 2:
            img = img.convert("RGBA")
        elif kind == 3:
            img = img.convert("L")
        img.save(path)
        paths.append(path)
    return paths


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "endurance.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="endurance-"))
    artifact = args.artifact
    if artifact is None:
        artifact = tmp / "art"
        subprocess.run([sys.executable, "-m", "edgecnn", "export", "mobilenet", "--alpha", "0.25",
                        "--resolution", "32", "-o", str(artifact)], check=True,
                       capture_output=True)
    from edgecnn.runtime import load

    images = write_images(tmp)
    load_before = os.getloadavg()
    # One inference thread, as a small device app runs: then process CPU time per call is
    # this call's work, which a loaded machine's scheduling does not inflate (wall time is).
    model = load(artifact, runtime="onnxruntime", device="cpu", threads=1)
    # Preallocated: two growing lists of floats would add 64 bytes a call to the RSS measured.
    times = np.zeros(args.calls)
    cpu = np.zeros(args.calls)
    rss: list[tuple[int, float]] = [(0, 0.0)] * (args.calls // 500)
    for i in range(args.calls):
        path = images[i % len(images)]
        start, start_cpu = time.perf_counter(), time.process_time()
        model.predict(path, topk=5)
        times[i] = time.perf_counter() - start
        cpu[i] = time.process_time() - start_cpu
        if (i + 1) % 500 == 0:
            rss[(i + 1) // 500 - 1] = (i + 1, rss_mb())
    after_warmup = next(mb for n, mb in rss if n == WARMUP)
    first = times[WARMUP:WARMUP + WINDOW]
    last = times[-WINDOW:]
    endurance = {
        "calls": args.calls, "warmup_calls": WARMUP,
        "rss_mb_after_warmup": round(after_warmup, 2), "rss_mb_end": round(rss[-1][1], 2),
        "rss_mb_max_after_warmup": round(max(mb for n, mb in rss if n >= WARMUP), 2),
        "rss_growth_mb": round(rss[-1][1] - after_warmup, 2),
        "rss_samples": [(n, round(mb, 2)) for n, mb in rss],
        "p50_ms_first": round(1e3 * percentile(first, 50), 4),
        "p99_ms_first": round(1e3 * percentile(first, 99), 4),
        "p50_ms_last": round(1e3 * percentile(last, 50), 4),
        "p99_ms_last": round(1e3 * percentile(last, 99), 4),
    }
    endurance["p99_change_pct"] = round(
        100 * (endurance["p99_ms_last"] / endurance["p99_ms_first"] - 1), 2)
    cpu_first, cpu_last = cpu[WARMUP:WARMUP + WINDOW], cpu[-WINDOW:]
    endurance["cpu_p99_ms_first"] = round(1e3 * percentile(cpu_first, 99), 4)
    endurance["cpu_p99_ms_last"] = round(1e3 * percentile(cpu_last, 99), 4)
    endurance["cpu_p99_change_pct"] = round(
        100 * (endurance["cpu_p99_ms_last"] / endurance["cpu_p99_ms_first"] - 1), 2)
    endurance["rss_pass"] = endurance["rss_growth_mb"] <= 2.0
    endurance["p99_pass"] = abs(endurance["p99_change_pct"]) <= 10.0
    endurance["cpu_p99_pass"] = abs(endurance["cpu_p99_change_pct"]) <= 10.0
    endurance["pass"] = endurance["rss_pass"] and endurance["p99_pass"]

    serial = {p: model.predict(p, topk=5)[0] for p in images}
    work = images * 5
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: model.predict(p, topk=5)[0], work))
    seconds = time.perf_counter() - start
    mismatches = sum(r != serial[p] for p, r in zip(work, results))
    threads = {"threads": 4, "calls": len(work), "mismatches_vs_serial": mismatches,
               "calls_per_s": round(len(work) / seconds, 1)}
    model.close()

    record = {
        "command": "python benchmarks/runtime/endurance.py" + (
            f" --calls {args.calls}" if args.calls != 20_000 else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load": os.getloadavg(),
                    "python": platform.python_version()},
        "versions": _versions(),
        "model": "mobilenet alpha 0.25, 32 px, fp32, onnxruntime CPU, 1 thread",
        "load_before": load_before,
        "images": "200 files (JPEG, PNG, RGBA PNG, gray PNG), 48-96 px, cycled",
        "endurance": endurance, "threads": threads,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in endurance.items() if k != "rss_samples"}, indent=2))
    print(json.dumps(threads))
    return 0 if endurance["pass"] and not mismatches else 1


def _versions() -> dict[str, str]:
    import onnxruntime
    import PIL

    import edgecnn

    return {"edgecnn": edgecnn.__version__, "onnxruntime": onnxruntime.__version__,
            "pillow": PIL.__version__, "numpy": np.__version__}


if __name__ == "__main__":
    raise SystemExit(main())
