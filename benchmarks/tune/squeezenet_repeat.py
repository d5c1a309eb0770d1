"""SqueezeNet 1.1: edgecnn's tuned int8 against NNCF's in OpenVINO, repeated.

    python benchmarks/tune/squeezenet_repeat.py     # after peers.py (it reads its artifact)

peers.md puts SqueezeNet 1.1 within a few percent of NNCF either way, and OpenVINO's
per-layer counters show the two graphs running the same kernels layer for layer. One group
cannot tell such a tie from a gap, so this times the two files, each twice (the A/A pair),
in REPEATS separate groups per thread count (edgecnn's harness, OpenVINO f32 hint, batch 1),
and writes every group's ratio: NNCF's p50 over edgecnn's (>= 1.00: edgecnn at least as
fast), each file's p50 the mean of its two cases. Writes squeezenet_repeat.md beside this.
"""

from __future__ import annotations

import datetime
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
REPEATS = 5


def main() -> None:
    from peers import OUT, _ov_ir_runner

    from edgecnn.host import cpu_flags, cpu_model
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner
    from edgecnn.timing.harness import BenchCase, run_group
    from edgecnn.timing.loop import TimingPlan

    art = OUT / "squeezenet1_1"
    # tuning.json keeps the last thread count's record; peers.json keeps each one
    row = json.loads((HERE / "peers.json").read_text())["models"]["squeezenet1_1"]
    lines = []
    for threads in (1, 2):
        record = row[f"threads_{threads}"]["tune"]
        if record["runtime"] != "openvino":
            raise SystemExit(f"peers.json: tune chose {record['runtime']} at {threads} "
                             "thread(s); this compares OpenVINO files")
        tuned = art / record["file"]
        ratios, spreads = [], []
        for _ in range(REPEATS):
            cases = []
            for copy in ("a", "b"):
                cases.append(BenchCase(f"edgecnn {copy}", "openvino", "int8", 1,
                                       make_runner=lambda t=threads: OvRunner(
                                           tuned, "cpu", OvOptions(threads=t))))
                cases.append(BenchCase(f"NNCF {copy}", "openvino", "int8", 1,
                                       make_runner=lambda t=threads: _ov_ir_runner(
                                           art / "model.onnx", art / "peer-nncf.int8.xml", t)))
            p50 = {r.model: r.latency_ms_p50 for r in
                   run_group(cases, TimingPlan(iters=1000), peak_gmacs=None, rounds=10)}
            ours = (p50["edgecnn a"] + p50["edgecnn b"]) / 2
            theirs = (p50["NNCF a"] + p50["NNCF b"]) / 2
            ratios.append(theirs / ours)
            spreads.append(max(abs(p50["edgecnn a"] / p50["edgecnn b"] - 1),
                               abs(p50["NNCF a"] / p50["NNCF b"] - 1)))
            lines.append(f"| {threads} | {record['file']} | {ours:.3f} | {theirs:.3f} | "
                         f"{theirs / ours:.3f} | {spreads[-1]:.1%} |")
        lines.append(f"| {threads} | median of {REPEATS} | | | "
                     f"**{statistics.median(ratios):.3f}** | {max(spreads):.1%} (widest) |")
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    head = ["# SqueezeNet 1.1: edgecnn's tuned int8 and NNCF's in OpenVINO, repeated", "",
            f"`python benchmarks/tune/squeezenet_repeat.py`, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{cpu_model()} ({' '.join(flags)}), batch 1, 224 px, OpenVINO f32 hint; "
            f"{REPEATS} groups per thread count, each: both files twice, 1,000 calls per case "
            "in 10 interleaved rounds, p50. Files from peers.py's artifact (the file tune "
            "chose at that thread count). ratio = NNCF / edgecnn (>= 1.000: edgecnn at least "
            "as fast); A/A = the wider gap between a file's two cases.", "",
            "| threads | edgecnn file | edgecnn ms | NNCF ms | ratio | A/A |",
            "|---:|---|---:|---:|---:|---:|"]
    (HERE / "squeezenet_repeat.md").write_text("\n".join(head + lines) + "\n")
    print("\n".join(head + lines))


if __name__ == "__main__":
    main()
