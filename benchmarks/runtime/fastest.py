"""`--runtime fastest` on the edge families: the runtime and thread count it picks, its p50
beside ONNX Runtime's and OpenVINO's at every core.

    python benchmarks/runtime/fastest.py     # after benchmarks/export/int8_families.py

Uses the artifacts int8_families.py exported (runs/bench-export/families/*), fp32 and int8.
For each file: `runtime.fastest.choose` measures (or reads its cache for) onnxruntime and
openvino at 1 thread and every core; then the bench harness times onnxruntime, openvino
(every core) and the fastest choice interleaved in one group. Writes fastest.{json,md} here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAMILIES = HERE.parents[1] / "runs" / "bench-export" / "families"


def main() -> int:
    from edgecnn.bench.machine import conditions
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.timing.loop import TimingPlan

    os.environ["EDGECNN_CACHE"] = tempfile.mkdtemp()  # measured now, not a stale cache
    threads = os.cpu_count() or 1
    rows = []
    for art in sorted(p for p in FAMILIES.iterdir() if (p / "export.json").is_file()):
        load = os.getloadavg()[0]
        records, _ = run_bench([str(art)], BenchConfig(
            runtimes=("onnxruntime", "openvino", "fastest"), precisions=("fp32", "int8"),
            threads=threads, plan=TimingPlan(warmup=10, iters=150), rounds=15))
        for prec in ("fp32", "int8"):
            got = {r.runtime: r.latency_ms_p50 for r in records if r.precision == prec}
            fast = next(k for k in got if k.startswith("fastest"))
            rows.append({"model": art.name, "precision": prec, "fastest": fast,
                         "fastest_ms": round(got[fast], 4),
                         "onnxruntime_ms": round(got["onnxruntime"], 4),
                         "openvino_ms": round(got["openvino"], 4), "load": round(load, 1)})
            print(rows[-1], flush=True)
    cond = conditions(threads)
    (HERE / "fastest.json").write_text(json.dumps({"conditions": cond, "rows": rows},
                                                  indent=2) + "\n")
    pk = ", ".join(f"{k} {v}" for k, v in cond["packages"].items())
    md = ["# `--runtime fastest` on the edge families", "",
          f"`python benchmarks/runtime/fastest.py`, {time.strftime('%Y-%m-%d %H:%M')} UTC, "
          f"{cond['cpu']} ({cond['cpu_cores']} cores; 1-minute load per row), {pk}. "
          f"Batch 1, p50 of 150 calls, the three cases of a file interleaved in 15 rounds; "
          f"onnxruntime and openvino at {threads} threads, fastest at what it measured best.",
          "", "| model | prec | fastest picks | fastest ms | onnxruntime ms | openvino ms | "
          "load |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {r['precision']} | {r['fastest']} | {r['fastest_ms']:.3f}"
                  f" | {r['onnxruntime_ms']:.3f} | {r['openvino_ms']:.3f} | {r['load']} |")
    (HERE / "fastest.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
