"""The benchmark issue's own figures, measured in one run on this machine.

    python benchmarks/harness/run.py

1. Efficiency: ONNX Runtime fp32, MobileNet alpha 0.5 at 224, batch 1 -- the p50 latency
   against the floor set by this machine's fp32 matrix-product rate (MACs / peak), and the
   speed-up over PyTorch eager; both measured interleaved in one group.
2. Repeatability: the same benchmark run twice, back to back: the p50s must agree within 10%.
3. Overhead: a 500-iteration run of one model; wall time of the whole run against the sum of
   the timed calls (what the harness adds: warm-up, cold start, bookkeeping).
Writes benchmarks/harness/results.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from edgecnn.bench.harness import add_speedups, run_group
from edgecnn.bench.machine import conditions, peak_gmacs
from edgecnn.bench.targets import make_cases, resolve_target
from edgecnn.bench.timing import TimingPlan
from edgecnn.export.api import ExportOptions, export

HERE = Path(__file__).resolve().parent
THREADS = os.cpu_count() or 1


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        art = export(ExportOptions(source="mobilenet", alpha=0.5, dynamic_batch=True,
                                   output=str(Path(tmp) / "mobilenet-a0.5-r224"))).path
        target = resolve_target(str(art), alpha=0.5, resolution=None, precisions=("fp32",))
        # efficiency at 1 thread and at every core: batch 1 does not split perfectly
        per_threads = {}
        for threads in sorted({1, THREADS}):
            peak_t = peak_gmacs(threads)
            (group,) = make_cases(target, runtimes=("torch-eager", "onnxruntime"),
                                  precisions=("fp32",), batches=(1,), threads=threads,
                                  device="cpu")
            recs = run_group(group, TimingPlan(warmup=20, iters=300), peak_gmacs=peak_t,
                             rounds=6)
            add_speedups(recs, baseline=lambda r: r.runtime == "torch-eager")
            per_threads[threads] = (peak_t, *recs)
        peak, eager, ort = per_threads[THREADS]
        cond = conditions(THREADS) | {"peak_gmacs": peak}
        floor_ms = ort.macs / (peak * 1e9) * 1e3
        by_threads = {t: {"peak_gmacs": pk, "ort_p50_ms": o.latency_ms_p50,
                          "eager_p50_ms": e.latency_ms_p50,
                          "floor_ms": o.macs / (pk * 1e9) * 1e3,
                          "efficiency_pct_p50": 100 * o.macs / (pk * 1e9) * 1e3 / o.latency_ms_p50,
                          "speedup_vs_eager": o.speedup_vs_baseline}
                      for t, (pk, e, o) in per_threads.items()}

        p50s = []
        for _ in range(2):
            (g,) = make_cases(target, runtimes=("onnxruntime",), precisions=("fp32",),
                              batches=(1,), threads=THREADS, device="cpu")
            p50s.append(run_group(g, TimingPlan(warmup=20, iters=300), peak_gmacs=peak,
                                  rounds=3)[0].latency_ms_p50)

        (g,) = make_cases(target, runtimes=("onnxruntime",), precisions=("fp32",),
                          batches=(1,), threads=THREADS, device="cpu")
        t0 = time.perf_counter()
        (r500,) = run_group(g, TimingPlan(warmup=10, iters=500), peak_gmacs=peak, rounds=5)
        wall = time.perf_counter() - t0
        timed = r500.latency_ms_mean * r500.iters / 1e3

    out = {
        "conditions": cond,
        "efficiency": {"ort_p50_ms": ort.latency_ms_p50, "ort_mean_ms": ort.latency_ms_mean,
                       "eager_p50_ms": eager.latency_ms_p50, "macs": ort.macs,
                       "floor_ms": floor_ms, "efficiency_pct_p50": 100 * floor_ms / ort.latency_ms_p50,
                       "speedup_vs_eager": ort.speedup_vs_baseline,
                       "goals": "efficiency >= 80%, speed-up >= 3.5x",
                       "by_threads": by_threads},
        "repeatability": {"p50_ms": p50s, "difference_pct": 100 * abs(p50s[0] - p50s[1]) / min(p50s),
                          "goal": "<= 10%"},
        "overhead": {"iters": r500.iters, "wall_s": wall, "timed_s": timed,
                     "harness_s": wall - timed, "goal": "harness <= 2 s"},
    }
    (HERE / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    e, rp, o = out["efficiency"], out["repeatability"], out["overhead"]
    md = f"""# Harness figures

Command: `python benchmarks/harness/run.py`. Machine: {cond['cpu']}, {cond['cpu_cores']} cores,
{THREADS} threads per runtime, onnxruntime {cond['packages'].get('onnxruntime')}, torch
{cond['packages'].get('torch')}; measured {cond['time_utc']}. Peak fp32 matrix product (numpy
BLAS, same threads, best of 5): {peak:.1f} GMAC/s.

| figure | measured | goal |
|---|---:|---|
| ORT fp32 MobileNet 0.5 @224 batch 1, p50 | {e['ort_p50_ms']:.3f} ms | |
| floor = {e['macs']:,} MACs / peak | {e['floor_ms']:.3f} ms | |
| efficiency (floor / p50) | {e['efficiency_pct_p50']:.0f}% | >= 80% |
| PyTorch eager p50 (same group, interleaved) | {e['eager_p50_ms']:.3f} ms | |
| speed-up over eager | {e['speedup_vs_eager']:.2f}x | >= 3.5x |
{chr(10).join(f"| {t} thread(s): ORT p50 {v['ort_p50_ms']:.3f} ms, floor {v['floor_ms']:.3f} ms (peak {v['peak_gmacs']:.1f} GMAC/s), eager {v['eager_p50_ms']:.3f} ms | efficiency {v['efficiency_pct_p50']:.0f}%, {v['speedup_vs_eager']:.2f}x | >= 80%, >= 3.5x |" for t, v in by_threads.items())}
| repeat p50s | {rp['p50_ms'][0]:.3f} / {rp['p50_ms'][1]:.3f} ms ({rp['difference_pct']:.1f}% apart) | <= 10% |
| 500-iteration run: wall / timed calls | {o['wall_s']:.2f} s / {o['timed_s']:.2f} s (harness {o['harness_s']:.2f} s) | harness <= 2 s |
"""
    (HERE / "results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
