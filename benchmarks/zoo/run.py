"""The zoo's edge families side by side: PyTorch eager vs ONNX Runtime vs OpenVINO, fp32/int8.

    python benchmarks/zoo/run.py                 # CPU table (all of the machine's cores)
    python benchmarks/zoo/run.py --models mobilenet,squeezenet1_1 --batches 1

Writes benchmarks/zoo/results-<device>.{json,md}. Every model is exported on the fly at
224 px with initialized weights (latency does not depend on the values; BN statistics are
set from a random batch so no denormals skew it); int8 is calibrated on random images, so
these int8 rows are for latency only (accuracy: benchmarks/export). On a machine with an
NVIDIA GPU, the GPU table adds PyTorch eager vs torch.compile vs CUDA graphs in fp32/fp16.
Within each (model, batch) group the cases are measured interleaved in rounds; the ratio
column is PyTorch eager p50 / p50.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edgecnn.bench.report import render
from edgecnn.bench.run import BenchConfig, run_bench
from edgecnn.timing.loop import TimingPlan

EDGE = ("mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
        "squeezenet1_1", "squeezenext23", "shufflenet_v2_x1_0")
HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(EDGE))
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per case")
    args = ap.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    plan = TimingPlan(warmup=5, iters=None, duration_s=args.seconds)
    runs = [("cpu", BenchConfig(runtimes=("torch-eager", "onnxruntime", "openvino"),
                                precisions=("fp32", "int8"), batches=batches,
                                threads=args.threads, plan=plan, rounds=5))]
    try:
        import torch

        if torch.cuda.is_available():
            runs.append(("gpu", BenchConfig(
                runtimes=("torch-eager", "torch-compile", "torch-cudagraphs"),
                precisions=("fp32", "fp16"), batches=batches, threads=args.threads,
                device="cuda", plan=plan, rounds=5)))
    except ImportError:
        pass
    for device, config in runs:
        records, cond = run_bench(args.models.split(","), config,
                                  progress=lambda n, t: None)
        stem = HERE / f"results-{device}"
        (stem.with_suffix(".json")).write_text(render(records, "json", cond) + "\n")
        (stem.with_suffix(".md")).write_text(render(records, "md", cond) + "\n")
        print(render(records, "table", cond))
    return 0


if __name__ == "__main__":
    sys.exit(main())
