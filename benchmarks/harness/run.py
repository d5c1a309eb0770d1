"""The harness's own figures, measured in one run on the machine that runs this script.

    python benchmarks/harness/run.py

1. Efficiency: ONNX Runtime fp32, MobileNet alpha 0.5 at 224, batch 1 -- the p50 latency
   against the floor set by the machine's fp32 matrix-product rate (MACs / peak), and the
   speed-up over PyTorch eager; both measured interleaved in one group.
2. Repeatability: the same benchmark run twice, back to back: the p50s must agree within 10%.
3. Overhead: a 500-iteration run of one model; wall time of the whole run against the sum of
   the timed calls (what the harness adds: warm-up, cold start, bookkeeping).
4. Where the time goes: ONNX Runtime's own profiler, per kind of layer (depthwise,
   pointwise, dense: the stem and the classifier, other) at 1 thread and at every core:
   which layers use the second core and which do not.
Writes benchmarks/harness/results.{json,md}.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from edgecnn.bench.machine import conditions, peak_gmacs
from edgecnn.bench.targets import make_cases, resolve_target
from edgecnn.export.api import export
from edgecnn.export.spec import ExportSpec, Int8Spec, ZooSource
from edgecnn.timing.harness import add_speedups, run_group
from edgecnn.timing.loop import TimingPlan

HERE = Path(__file__).resolve().parent
THREADS = os.cpu_count() or 1


def roofline(art: Path) -> dict:
    """ONNX Runtime fp32 and int8 against the per-layer roofline (bench/roofline.py), at 1
    thread and every core: p50 (harness, interleaved) over the bound, and per layer kind the
    bound beside the profiler's kernel time."""
    from edgecnn.bench.roofline import layer_bounds, measure_peaks

    target = resolve_target(str(art), alpha=0.5, resolution=None, precisions=("fp32", "int8"))
    out = {}
    for threads in sorted({1, THREADS}):
        peaks = measure_peaks(threads)
        (group,) = make_cases(target, runtimes=("onnxruntime",), precisions=("fp32", "int8"),
                              batches=(1,), threads=threads, device="cpu")
        recs = run_group(group, TimingPlan(warmup=20, iters=300), peak_gmacs=peaks.fp32_gmacs,
                         rounds=6)
        row = {"peaks": peaks.__dict__}
        for r in recs:
            path = target.files[r.precision]
            bounds = layer_bounds(path, peaks)
            measured = layer_breakdown(path, threads)
            kinds = {}
            for kind, m in measured.items():
                if kind != "total":
                    kinds.setdefault(kind, {"measured_ms": 0.0})["measured_ms"] += m["ms"]
            for k, b in bounds.items():
                if k != "total":
                    kinds.setdefault(k, {"measured_ms": 0.0})["bound_ms"] = b["bound_ms"]
            row[r.precision] = {"p50_ms": r.latency_ms_p50,
                                "roofline_ms": bounds["total"]["bound_ms"],
                                "roofline_pct": 100 * bounds["total"]["bound_ms"]
                                / r.latency_ms_p50, "kinds": kinds}
        out[threads] = row
    return out


def roofline_md(rf: dict, cond: dict) -> str:
    md = ["", "## Roofline (ONNX Runtime, MobileNet alpha 0.5 at 224, batch 1)", "",
          f"Measured {cond['time_utc']} on {cond['cpu']} ({cond['cpu_cores']} cores; load "
          f"average {cond.get('load', '?')}). Per layer: max(MACs / peak, bytes / bandwidth; the "
          "cache's when the layer's bytes fit in the last-level cache) "
          "for its precision, summed; roofline % = that bound / p50. Per kind: the bound beside "
          "ONNX Runtime's profiled kernel time (median per run).", "",
          "| threads | fp32 peak GMAC/s | int8 peak GMAC/s | copy GB/s (DRAM / cache) | precision "
          "| p50 ms | roofline ms | roofline % | pointwise bound/measured ms | depthwise | dense | "
          "other |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t, row in rf.items():
        pk = row["peaks"]
        for prec in ("fp32", "int8"):
            x = row[prec]
            cells = [f"{x['kinds'].get(k, {}).get('bound_ms', 0):.3f} / "
                     f"{x['kinds'].get(k, {}).get('measured_ms', 0):.3f}"
                     for k in ("pointwise", "depthwise", "dense", "other")]
            md.append(f"| {t} | {pk['fp32_gmacs']:.1f} | {pk['int8_gmacs']:.1f} | "
                      f"{pk['bandwidth_gbs']:.1f} / {pk.get('cache_bandwidth_gbs') or 0:.1f} | "
                      f"{prec} | {x['p50_ms']:.3f} | "
                      f"{x['roofline_ms']:.3f} | {x['roofline_pct']:.0f}% | " + " | ".join(cells)
                      + " |")
    md += ["", "Goal: fp32 at >= 80% of its roofline at both thread counts."]
    return "\n".join(md) + "\n"


def main() -> int:
    if sys.argv[1:] == ["--only", "roofline"]:  # just this section, into results.{json,md}
        with tempfile.TemporaryDirectory() as tmp:
            art = export(ExportSpec(ZooSource("mobilenet", alpha=0.5, num_classes=10),
                                    int8=Int8Spec("random", calib_samples=64),
                                    output=str(Path(tmp) / "mobilenet-a0.5-r224"))).path
            rf = roofline(art)
        cond = conditions(THREADS) | {"load": round(os.getloadavg()[0], 1)}
        data = json.loads((HERE / "results.json").read_text())
        data["roofline"] = {"conditions": cond, "by_threads": rf,
                            "command": "python benchmarks/harness/run.py --only roofline"}
        (HERE / "results.json").write_text(json.dumps(data, indent=2) + "\n")
        md = (HERE / "results.md").read_text().split("\n## Roofline")[0].rstrip("\n") + "\n"
        (HERE / "results.md").write_text(md + roofline_md(rf, cond) + "\n- `python "
                                         "benchmarks/harness/run.py --only roofline`\n")
        print(roofline_md(rf, cond))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        art = export(ExportSpec(ZooSource("mobilenet", alpha=0.5), dynamic_batch=True,
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

        breakdown = {t: layer_breakdown(art / "model.onnx", t) for t in sorted({1, THREADS})}

    out = {
        "conditions": cond,
        "layer_breakdown_ms": breakdown,
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
    lo, hi = breakdown[min(breakdown)], breakdown[max(breakdown)]
    md += ("\nWhere ONNX Runtime's time goes (its profiler: median kernel time per run of each "
           "node, summed per kind of layer; GMAC/s against the peak of the same thread count):"
           "\n\n| layer kind | MACs | " + " | ".join(f"{t} thread(s): ms (GMAC/s)"
                                                   for t in breakdown)
           + " | speed-up |\n|---|---:|" + "---:|" * (len(breakdown) + 1) + "\n")
    for kind in lo:
        md += (f"| {kind} | {lo[kind]['macs'] / 1e6:.1f}M | "
               + " | ".join(f"{b[kind]['ms']:.3f} ({b[kind]['gmacs_per_s']:.0f})"
                            for b in breakdown.values())
               + f" | {lo[kind]['ms'] / hi[kind]['ms']:.2f}x |\n")
    (HERE / "results.md").write_text(md)
    print(md)
    return 0


def layer_breakdown(path: Path, threads: int, runs: int = 200) -> dict[str, dict[str, float]]:
    """Per kind of layer (bench/roofline.py's: pointwise, depthwise, dense, other): median
    kernel time per run (ms) from ONNX Runtime's profiler, the multiply-adds and the rate
    achieved. Each profiled node is matched to the file's layer it runs (profiled_kind), so
    fused fp32 NCHWc convolutions and int8 QLinearConvs are classified alike."""
    import numpy as np
    import onnxruntime as ort

    from edgecnn.bench.roofline import KINDS, layer_kinds, profiled_kind

    kinds_of = layer_kinds(path)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.enable_profiling = threads, True
    so.profile_file_prefix = str(Path(tempfile.gettempdir()) / "edgecnn-harness-profile")
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    for _ in range(runs):
        session.run(None, {name: x})
    profile = Path(session.end_profiling())
    per_node: dict[tuple[str, str], list[float]] = {}
    layers: dict[str, tuple[str, float]] = {}  # layer -> (kind, MACs), each counted once
    for event in json.loads(profile.read_text()):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        layer, kind, macs = profiled_kind(kinds_of, event["name"])
        if layer:
            layers[layer] = (kind, macs)
        per_node.setdefault((kind, event["name"]), []).append(event["dur"] / 1e3)
    profile.unlink()
    kinds = {k: {"ms": 0.0, "macs": 0.0} for k in KINDS}
    for kind, macs in layers.values():
        kinds[kind]["macs"] += macs
    for (kind, _), durations in per_node.items():
        kinds[kind]["ms"] += float(np.median(durations))
    kinds["total"] = {"ms": sum(r["ms"] for r in kinds.values()),
                      "macs": sum(r["macs"] for r in kinds.values())}
    for row in kinds.values():
        row["gmacs_per_s"] = row["macs"] / row["ms"] / 1e6 if row["macs"] and row["ms"] else 0.0
    return kinds


if __name__ == "__main__":
    sys.exit(main())
