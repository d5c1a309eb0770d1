"""int8 against fp32 for every edge family, after the per-block precision search.

    python benchmarks/export/int8_families.py                      # all edge families
    python benchmarks/export/int8_families.py --models mobilenet_v3_small --threads 1

Each model is exported by the real `edgecnn export` at its default resolution (224 px, 227
for SqueezeNext) with initialized weights and BN statistics from a batch (speed does not
depend on the values), int8 calibrated on random images: the export profiles its blocks in
ONNX Runtime and keeps float where int8 is slower (export/mixed.py). Then `edgecnn bench`'s
harness times ONNX Runtime and OpenVINO, fp32 and int8, batch 1, the four cases of a model
interleaved in rounds in one run, at 1 and 2 threads. Load average (uptime) is recorded
before and after every model. Writes int8_families.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "runs" / "bench-export" / "families"
EDGE = ("mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
        "squeezenet1_1", "squeezenext23", "shufflenet_v2_x1_0")
# The goals: int8 / fp32 speed-up (p50), every runtime and thread count.
GOALS = {"mobilenet_v3_small": 1.2, "mobilenet_v3_large": 1.2}
GOALS_ORT = {("mobilenet-a0.5", 1): 1.8, ("mobilenet-a0.5", 2): 1.6,
             ("squeezenet1_1", 1): 1.8, ("squeezenet1_1", 2): 1.6}


def goal(name: str, runtime: str, threads: int) -> float:
    if runtime == "onnxruntime" and (name, threads) in GOALS_ORT:
        return GOALS_ORT[(name, threads)]
    return GOALS.get(name, 1.0)


def export(name: str, extra: list[str]) -> tuple[dict, str, float]:
    out = OUT / name
    args = ["export", *extra, "--num-classes", "10", "--int8", "--calib-data", "random",
            "--calib-samples", "64", "-o", str(out.relative_to(ROOT)), "--force"]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgecnn", *args], cwd=ROOT, text=True,
                          capture_output=True)
    if proc.returncode:
        raise SystemExit(f"edgecnn {' '.join(args)} failed:\n{proc.stderr}")
    report = json.loads((out / "export.json").read_text())
    return report, "edgecnn " + " ".join(args), time.perf_counter() - start


def bench(path: Path, threads: int) -> dict[str, float]:
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.timing.loop import TimingPlan

    records, _ = run_bench([str(path)], BenchConfig(
        runtimes=("onnxruntime", "openvino"), precisions=("fp32", "int8"), threads=threads,
        plan=TimingPlan(warmup=10, iters=200), rounds=20))
    return {f"{r.runtime}_{r.precision}_ms": round(r.latency_ms_p50, 4) for r in records}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(EDGE))
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()
    path = HERE / "int8_families.json"
    results = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    results["conditions"] = _conditions()
    for model in args.models.split(","):
        extra = [model] + (["--alpha", "0.5"] if model == "mobilenet" else [])
        name = "mobilenet-a0.5" if model == "mobilenet" else model
        load_before = os.getloadavg()
        report, command, wall = export(name, extra)
        int8 = report["int8"]
        row = {"command": command, "export_wall_s": round(wall, 2),
               "resolution": report["resolution"], "search": {
                   k: int8["blocks"].get(k) for k in ("chosen", "search_s", "profiled_sessions",
                                                      "candidates_profiled_ms")},
               "blocks_float": len(int8["blocks"].get("float_blocks", [])),
               "blocks_total": len(int8["blocks"].get("blocks", [])),
               "export_verdict": int8["verdict"], "export_latency": int8["latency"],
               "timings_s": report["timings_s"]}
        for t in (int(x) for x in args.threads.split(",")):
            ms = bench(OUT / name, t)
            row[f"threads_{t}"] = ms | {
                f"{rt}_speedup": round(ms[f"{rt}_fp32_ms"] / ms[f"{rt}_int8_ms"], 3)
                for rt in ("onnxruntime", "openvino")}
        row["load_average"] = {"before": load_before, "after": os.getloadavg()}
        results["models"][name] = row
        print(name, json.dumps(row), flush=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "int8_families.md").write_text(markdown(results))
    print(f"wrote {path} and int8_families.md")
    return 0


def markdown(r: dict) -> str:
    c = r["conditions"]
    lines = ["# int8 vs fp32 per edge family, after the per-block precision search", "",
             f"Measured {c['date_utc']} by `python benchmarks/export/int8_families.py` on "
             f"{c['cpu']} ({c['cores']} cores, {c['flags']}; load "
             "average per model below), " + ", ".join(f"{k} {v}" for k, v in
                                                      c["versions"].items()) + ". "
             "Batch 1, p50 of 200 calls per case, the four cases of a model (ONNX Runtime and "
             "OpenVINO, fp32 and int8) interleaved in 20 rounds of 10-call blocks, each round "
             "starting one case later, by the bench harness. Models "
             "with initialized weights, BN statistics from a batch; int8 calibrated on random "
             "images (speed only; accuracy: results.md).", "",
             "| model | px | threads | ORT fp32 ms | ORT int8 ms | ORT x | OV fp32 ms | "
             "OV int8 ms | OV x | goal | float blocks | load 1-min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in r["models"].items():
        for t in (1, 2):
            x = row.get(f"threads_{t}")
            if not x:
                continue
            lines.append(
                f"| {name} | {row['resolution']} | {t} | {x['onnxruntime_fp32_ms']:.3f} | "
                f"{x['onnxruntime_int8_ms']:.3f} | {x['onnxruntime_speedup']:.2f}x | "
                f"{x['openvino_fp32_ms']:.3f} | {x['openvino_int8_ms']:.3f} | "
                f"{x['openvino_speedup']:.2f}x | ORT >= {goal(name, 'onnxruntime', t)}x, OV >= "
                f"{goal(name, 'openvino', t)}x | {row['blocks_float']}/{row['blocks_total']} | "
                f"{row['load_average']['before'][0]:.1f}-{row['load_average']['after'][0]:.1f} |")
    lines += ["", "## The search and the export's verdict", "",
              "| model | chosen | search s | profiled sessions | export's verification (ORT, 1 "
              "thread) | verdict | export wall s |", "|---|---|---|---|---|---|---|"]
    for name, row in r["models"].items():
        s, v, lat = row["search"], row["export_verdict"], row["export_latency"]
        lat = lat.get("onnxruntime", lat)  # ONNX Runtime's line of the export's verification
        lines.append(f"| {name} | {s['chosen']} | {s['search_s']} | {s['profiled_sessions']} | "
                     f"{lat['fp32_ms']:.3f} -> {lat['int8_ms']:.3f} ms ({lat['speedup']:.2f}x) | "
                     f"{'worth deploying' if v['worth_deploying'] else 'not worth it'} | "
                     f"{row['export_wall_s']} |")
    lines += [""] + [f"- `{row['command']}`" for row in r["models"].values()] + [""]
    return "\n".join(lines) + "\n"


def _conditions() -> dict:
    import onnx
    import onnxruntime
    import openvino

    from edgecnn.host import cpu_flags, cpu_model

    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "flags": ", ".join(simd) or "unknown",
            "python": platform.python_version(), "date_utc": time.strftime(
                "%Y-%m-%d %H:%M", time.gmtime()),
            "versions": {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                         "openvino": openvino.__version__}}


if __name__ == "__main__":
    sys.exit(main())
