"""Two identical `edgecnn sweep` runs: do their timings agree?

    python benchmarks/sweep/repeat.py            # MobileNet, alpha 0.25..1.0 x 128..224 px

The first run exports every point (fp32, initialized weights); the second reuses them, so
the two differ only in timing. Each run times all 16 points together in one interleaved
group (5 rounds, 100 calls per point, settle pause). Goal: every point's p50 within 10%
between the runs, and no more-MACs-faster pair beyond the noise band within a run.
Writes repeat.json and repeat.md here; load average (uptime) before and after each run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "runs" / "bench-sweep" / "mobilenet"
ARGS = ["sweep", "mobilenet", "--threads", "2", "--iters", "100", "-o",
        str(OUT.relative_to(ROOT))]


def main() -> int:
    from edgecnn.bench.machine import peak_gmacs

    runs = []
    for _ in range(2):
        before = os.getloadavg()
        machine = peak_gmacs(2)  # the machine's own speed just before the run
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgecnn", *ARGS], cwd=ROOT, check=True,
                       capture_output=True, text=True)
        data = json.loads((OUT / "sweep.json").read_text())
        runs.append({"wall_s": round(time.perf_counter() - start, 1), "load_before": before,
                     "matmul_gmacs_before": round(machine, 1),
                     "load_after": os.getloadavg(), "rows": data["rows"],
                     "out_of_order": data["out_of_order"], "conditions": data["conditions"]})
    points = []
    for a, b in zip(runs[0]["rows"], runs[1]["rows"]):
        ratio = b["latency_ms_p50"] / a["latency_ms_p50"]
        points.append({"alpha": a["alpha"], "resolution": a["resolution"], "macs": a["macs"],
                       "p50_ms": [round(a["latency_ms_p50"], 4), round(b["latency_ms_p50"], 4)],
                       "ratio": round(ratio, 3), "within_10pct": abs(ratio - 1) <= 0.10})
    # A machine whose speed drifts between runs (a shared VM's host) moves every point alike:
    # each point against the median ratio shows whether the sweep itself repeats.
    median = float(sorted(p["ratio"] for p in points)[len(points) // 2])
    for p in points:
        p["vs_median"] = round(p["ratio"] / median, 3)
        p["within_10pct_of_median"] = abs(p["vs_median"] - 1) <= 0.10
    result = {"command": "edgecnn " + " ".join(ARGS), "runs": runs, "points": points,
              "median_ratio": round(median, 3),
              "all_within_10pct": all(p["within_10pct"] for p in points),
              "all_within_10pct_of_median": all(p["within_10pct_of_median"] for p in points)}
    (HERE / "repeat.json").write_text(json.dumps(result, indent=2) + "\n")
    (HERE / "repeat.md").write_text(markdown(result))
    print((HERE / "repeat.md").read_text())
    return 0


def markdown(r: dict) -> str:
    c = r["runs"][0]["conditions"]
    pk = ", ".join(f"{k} {v}" for k, v in c["packages"].items())
    lines = ["# Two identical sweeps", "",
             f"`{r['command']}`, run twice on {c['cpu']} ({c['cpu_cores']} cores), "
             f"{pk}; {c['time_utc']}. ONNX Runtime fp32, batch 1, p50 of 100 calls per point,"
             " all points interleaved in 5 rounds. Load average (1 min) before/after: " +
             "; ".join(f"run {i + 1}: {x['load_before'][0]:.1f}/{x['load_after'][0]:.1f}"
                       for i, x in enumerate(r["runs"])) + ".", "",
             "| alpha | px | MACs | run 1 p50 ms | run 2 p50 ms | run 2 / run 1 | within 10% | "
             "ratio / median ratio |", "|---|---|---|---|---|---|---|---|"]
    for p in r["points"]:
        lines.append(f"| {p['alpha']:g} | {p['resolution']} | {p['macs']:,} | "
                     f"{p['p50_ms'][0]:.3f} | {p['p50_ms'][1]:.3f} | {p['ratio']:.3f} | "
                     f"{'yes' if p['within_10pct'] else 'NO'} | {p.get('vs_median', 0):.3f} |")
    lines += ["", f"Every point within 10%: {'yes' if r['all_within_10pct'] else 'no'}."]
    if "median_ratio" in r:
        gm = [x.get("matmul_gmacs_before") for x in r["runs"]]
        lines.append(f"Median run 2 / run 1 over the points: {r['median_ratio']:.3f}; numpy's "
                     f"fp32 matmul just before each run: {gm[0]} / {gm[1]} GMAC/s. Every point "
                     "within 10% of the median ratio (the sweep's own repeatability once the "
                     "machine's drift between runs is divided out): "
                     f"{'yes' if r['all_within_10pct_of_median'] else 'no'}.")
    for i, x in enumerate(r["runs"]):
        bad = x["out_of_order"]
        lines.append(f"Run {i + 1}: {len(bad)} pair(s) where more MACs ran faster beyond the "
                     "noise band" + (": " + "; ".join(
                         f"{o['fewer_macs']} {o['p50_ms'][0]:.3f} ms > {o['more_macs']} "
                         f"{o['p50_ms'][1]:.3f} ms" for o in bad) if bad else "") + ".")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
