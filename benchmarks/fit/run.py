"""`edgecnn fit` against the full grid trained with the full schedule (issue 22's benchmark).

    python benchmarks/fit/run.py                       # MobileNet v1 on mnist5k (hours on 2 cores)
    python benchmarks/fit/run.py --quick               # a smoke run: digits, 2x2 grid, 2 epochs
    python benchmarks/fit/run.py --small               # mnist5k, 3x2 grid, 4 epochs (~20 min)

1. The reference: every grid point (alpha x resolution) trained with the full schedule
   (`--epochs`), each in its own process as fit trains (edgecnn/fit/executor.py), and its fp32
   graph timed whole, all points side by side in one group (edgecnn/fit/latency.py
   MeasuredHere: the harness, at --threads). Saved in OUT/reference.json and reused.
2. Three budgets: the 25th, 50th and 75th percentiles of those measured latencies.
3. Per budget: `edgecnn fit` from the command line (a subprocess, as a user runs it; its
   wall time recorded), then its artifact timed independently: three groups right after
   its fit, and three more at the end of the run, the three budgets' artifacts side by
   side (this VM slows by up to 1.45x for tens of seconds at a time). The fastest of the
   six must meet the budget, as fit keeps each file's fastest group; all six are
   recorded. And its top-1 against the most accurate reference point that meets the
   budget (goal: within 0.5 points; time per budget <= 15 min on 2 cores).
Writes benchmarks/fit/results.{json,md} (--quick, --small: results-quick.*, results-small.*),
with the command, the CPU, its flags, the versions and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's edgecnn, not an installed one


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--small", action="store_true")
    p.add_argument("--family", default="mobilenet")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-fit"))
    args = p.parse_args()
    mode = "quick" if args.quick else "small" if args.small else "full"
    if args.quick:
        data, alphas, res, epochs = "digits", (0.25, 0.5), (32, 48), 2
    elif args.small:
        data, alphas, res, epochs = "mnist5k", (0.25, 0.5, 1.0), (32, 48), 4
    else:
        data, alphas, res, epochs = "mnist5k", (0.25, 0.5, 0.75, 1.0), (32, 48, 64), 8
    from edgecnn.fit.latency import MeasuredHere
    from edgecnn.tune.run import check_threads

    threads = check_threads(args.threads)
    out = Path(args.out) / mode
    ref = reference(args.family, data, alphas, res, epochs, threads, out / "reference")
    lat = sorted(r["latency_ms"] for r in ref)
    q = statistics.quantiles(lat, n=4, method="inclusive")
    rows = []
    for pct, budget in zip((25, 50, 75), q):
        budget = round(budget, 4)
        fit_dir = out / f"fit-p{pct}"
        cmd = [sys.executable, "-m", "edgecnn", "fit", args.family, "--data", data,
               "--latency-ms", str(budget), "--alphas", ",".join(map(str, alphas)),
               "--resolutions", ",".join(map(str, res)), "--epochs", str(epochs),
               "--threads", str(threads), "-o", str(fit_dir), "--json", "--no-progress"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            rows.append({"percentile": pct, "budget_ms": budget, "error":
                         done.stderr.strip().splitlines()[-1:], "wall_s": round(wall, 1)})
            continue
        rec = json.loads(done.stdout)
        chosen = rec["candidates"][rec["chosen"]]
        groups = [MeasuredHere(threads, rounds=6, iters=60).time(
            {"artifact": Path(rec["artifact"]) / "model.onnx"})["artifact"] for _ in range(3)]
        best = max((r for r in ref if r["latency_ms"] <= budget), key=lambda r: r["top1"],
                   default=None)
        rows.append({"percentile": pct, "budget_ms": budget, "chosen": chosen["name"],
                     "artifact": rec["artifact"],
                     "chosen_top1": chosen["top1"], "chosen_ms_in_fit": chosen["latency_ms"],
                     "chosen_ms_again_groups": [round(g, 4) for g in groups],
                     "reference_best": best and f"a{best['alpha']:g} r{best['resolution']}",
                     "reference_top1": best and best["top1"],
                     "gap_points": best and round(best["top1"] - chosen["top1"], 2),
                     "latency_table_error_pct": rec["latency_table"].get("max_abs_error_pct"),
                     "phases_s": rec["phases_s"], "wall_s": round(wall, 1),
                     "command": " ".join(cmd[1:])})
    done_rows = [r for r in rows if "artifact" in r]
    if done_rows:  # the end of the run: every chosen artifact again, side by side
        files = {str(r["percentile"]): Path(r["artifact"]) / "model.onnx" for r in done_rows}
        ends = [MeasuredHere(threads, rounds=6, iters=60).time(files) for _ in range(3)]
        for r in done_rows:  # the verdict, once, from all six groups
            r["chosen_ms_end_groups"] = [round(e[str(r["percentile"])], 4) for e in ends]
            again = min(r["chosen_ms_again_groups"] + r["chosen_ms_end_groups"])
            r["chosen_ms_again"], r["meets_again"] = again, again <= r["budget_ms"]
    write(out, ref, rows, mode, threads, data, epochs)
    return 0


def reference(family: str, data: str, alphas: tuple[float, ...], res: tuple[int, ...],
              epochs: int, threads: int, out: Path) -> list[dict[str, Any]]:
    import onnx

    from edgecnn.data import load_dataset
    from edgecnn.fit.executor import LocalExecutor, TrainJob
    from edgecnn.fit.latency import MeasuredHere, untrained_graph

    saved = out / "reference.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    classes = load_dataset(data, split="train").num_classes
    rows, files = [], {}
    for a in alphas:
        for r in res:
            key = f"a{a:g}-r{r}"
            outcome = LocalExecutor().train(TrainJob(family, a, r, data, epochs,
                                                     str(out / key)))
            print(f"reference {key}: {outcome.top1:.2f}% in {outcome.seconds:.0f} s", flush=True)
            files[key] = out / f"{key}.onnx"
            onnx.save_model(untrained_graph(family, a, r, classes, 3), str(files[key]))
            rows.append({"alpha": a, "resolution": r, "top1": outcome.top1,
                         "train_s": outcome.seconds, "key": key})
    ms = MeasuredHere(threads, rounds=6, iters=60).time(files)
    for row in rows:
        row["latency_ms"] = round(ms[row["key"]], 4)
    saved.write_text(json.dumps(rows, indent=2))
    return rows


def write(out: Path, ref: list[dict[str, Any]], rows: list[dict[str, Any]], mode: str,
          threads: int, data: str, epochs: int) -> None:
    import onnxruntime
    import torch

    from edgecnn.host import cpu_flags, cpu_model

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu_model(), "flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni",
                                                                "avx_vnni", "amx_int8"}),
            "threads": threads, "data": data, "epochs": epochs,
            "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                         "python": sys.version.split()[0]},
            "command": "python benchmarks/fit/run.py" + ("" if mode == "full" else f" --{mode}")
            + f" --threads {threads}"}
    name = "results" if mode == "full" else f"results-{mode}"
    (HERE / f"{name}.json").write_text(json.dumps({"meta": meta, "reference": ref,
                                                   "budgets": rows}, indent=2) + "\n")
    title = {"quick": " (smoke run, --quick)", "small": " (mnist5k, a smaller grid, --small)"}
    lines = [f"# edgecnn fit: benchmark{title.get(mode, '')}", "",
             f"`{meta['command']}`, {meta['date']}; {meta['cpu']} ({', '.join(meta['flags'])}),"
             f" {threads} thread(s); torch {meta['versions']['torch']}, ONNX Runtime "
             f"{meta['versions']['onnxruntime']}; {data}, {epochs} epochs.", "",
             "| budget | chosen | top-1 | ms in fit | ms again: fastest (3 groups after the fit; "
             "3 at the end) | meets | "
             "best reference | its top-1 | gap | table error | wall |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| p{r['percentile']} {r['budget_ms']} ms | error: {r['error']} |"
                         + " |" * 9)
            continue
        groups = (", ".join(f"{g:.3f}" for g in r["chosen_ms_again_groups"]) + "; "
                  + ", ".join(f"{g:.3f}" for g in r.get("chosen_ms_end_groups", [])))
        lines.append(f"| p{r['percentile']} {r['budget_ms']} ms | {r['chosen']} | "
                     f"{r['chosen_top1']:.2f} | {r['chosen_ms_in_fit']:.3f} | "
                     f"{r['chosen_ms_again']:.3f} ({groups}) | "
                     f"{'yes' if r['meets_again'] else 'NO'} | "
                     f"{r['reference_best']} | {r['reference_top1']} | {r['gap_points']} | "
                     f"{r['latency_table_error_pct']}% | {r['wall_s']:.0f} s |")
    lines += ["", "Reference grid (full schedule):", "", "| point | top-1 | ms |", "|---|---|---|"]
    lines += [f"| {r['key']} | {r['top1']:.2f} | {r['latency_ms']:.3f} |" for r in ref]
    (HERE / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
