"""SqueezeNet 1.1: edgecnn's tuned int8 against NNCF's in OpenVINO, repeated.

    python benchmarks/tune/squeezenet_repeat.py     # after peers.py (it reads its artifact)

SqueezeNet 1.1's model.int8.onnx and NNCF's file run the same OpenVINO kernels layer for
layer, and were within about 1% of each other; tune's merged candidate (export/merge.py)
is what separates them. One group cannot tell a few percent from noise, so per thread
count this runs `edgecnn tune` on peers.py's artifact (the tuned file is per device, not
per thread count: a tune at 2 threads replaces the 1-thread file), then times the tuned
file and NNCF's, each twice (the A/A pair), and model.int8.onnx once, in REPEATS separate
groups (edgecnn's harness, OpenVINO f32 hint, batch 1). It writes every group's ratio:
NNCF's p50 over edgecnn's (>= 1.00: edgecnn at least as fast), each file's p50 the mean of
its two cases. Writes squeezenet_repeat.md beside this.
"""

from __future__ import annotations

import datetime
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
REPEATS = int(__import__("os").environ.get("REPEATS", 5))


def main() -> None:
    from peers import OUT, _ov_ir_runner, tune

    from edgecnn.host import cpu_flags, cpu_model
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner
    from edgecnn.timing.harness import BenchCase, run_group
    from edgecnn.timing.loop import TimingPlan

    art = OUT / "squeezenet1_1"
    lines, notes = [], []
    for threads in (1, 2):
        record = tune(art, threads)
        if record["runtime"] != "openvino":
            raise SystemExit(f"tune chose {record['runtime']} at {threads} thread(s); this "
                             "compares OpenVINO files")
        tuned = art / record["file"]
        ratios, spreads = [], []
        for _ in range(REPEATS):
            cases = []
            for copy in ("a", "b"):
                cases.append(BenchCase(f"edgecnn {copy}", "openvino", "int8", 1,
                                       make_runner=lambda t=threads, f=tuned: OvRunner(
                                           f, "cpu", OvOptions(threads=t))))
                cases.append(BenchCase(f"NNCF {copy}", "openvino", "int8", 1,
                                       make_runner=lambda t=threads: _ov_ir_runner(
                                           art / "model.onnx", art / "peer-nncf.int8.xml", t)))
            cases.append(BenchCase("int8", "openvino", "int8", 1,
                                   make_runner=lambda t=threads: OvRunner(
                                       art / "model.int8.onnx", "cpu", OvOptions(threads=t))))
            p50 = {r.model: r.latency_ms_p50 for r in
                   run_group(cases, TimingPlan(iters=1000), peak_gmacs=None, rounds=10)}
            ours = (p50["edgecnn a"] + p50["edgecnn b"]) / 2
            theirs = (p50["NNCF a"] + p50["NNCF b"]) / 2
            ratios.append(theirs / ours)
            spreads.append(max(abs(p50["edgecnn a"] / p50["edgecnn b"] - 1),
                               abs(p50["NNCF a"] / p50["NNCF b"] - 1)))
            lines.append(f"| {threads} | {record['candidate']} | {ours:.3f} | {theirs:.3f} | "
                         f"{theirs / ours:.3f} | {spreads[-1]:.1%} | {p50['int8']:.3f} |")
        lines.append(f"| {threads} | median of {REPEATS} | | | "
                     f"**{statistics.median(ratios):.3f}** | {max(spreads):.1%} (widest) | |")
        merged = record.get("merged_groups")
        timed = ", ".join(f"{k} {v:.3f}" for k, v in sorted(record["candidates_ms"].items())
                          if k.endswith("openvino"))
        notes.append(f"- {threads} thread(s): tune chose {record['candidate']} in "
                     f"{record['runtime']}" + (f", groups merged: {merged}" if merged else "")
                     + f"; it timed (ms) {timed}, noise band {record['noise_band']:.1%}")
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    head = ["# SqueezeNet 1.1: edgecnn's tuned int8 and NNCF's in OpenVINO, repeated", "",
            f"`python benchmarks/tune/squeezenet_repeat.py`, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{cpu_model()} ({' '.join(flags)}), batch 1, 224 px, OpenVINO f32 hint; "
            f"{REPEATS} groups per thread count, each: the tuned file and NNCF's twice, "
            "model.int8.onnx once, 1,000 calls per case in 10 interleaved rounds, p50. Files "
            "from peers.py's artifact, `edgecnn tune --threads T` run on it first. ratio = "
            "NNCF / edgecnn tuned (>= 1.000: edgecnn at least as fast); A/A = the wider gap "
            "between a file's two cases; int8 OV = model.int8.onnx in OpenVINO (what tune "
            "started from).", "",
            "| threads | tuned = | edgecnn tuned ms | NNCF ms | ratio | A/A | int8 OV ms |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    text = "\n".join(head + lines + [""] + notes) + "\n"
    (HERE / "squeezenet_repeat.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
