"""ONNX files timed side by side: each file's p50 at batch 1, in one group of interleaved,
rotated rounds through the harness, at a runtime and thread count. What `edgecnn fit`
measures with, on this machine (fit/latency.py MeasuredHere) and on a device over SSH
(remote/measure.py runs this module there, on the device's own install):

    ms = time_files({"a": Path("a.onnx"), "b": Path("b.onnx")}, "onnxruntime", threads=2)
    python -m edgecnn.timing.files --threads 2 a.onnx b.onnx     # {"a.onnx": 0.41, ...}

Torch-free, and onnx-free: input shapes come from the runtime's own ONNX reader.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecnn.errors import EdgeCNNError

# Timed calls per file, spread over this many rounds. Fit's models take 0.07-1.3 ms at 1
# thread: on the 2-core EPYC, 40 calls in 4 rounds left the same 12 MobileNet v1 files up to
# 14% apart over four groups (the fastest of two groups each), 100 in 8 up to 3%.
ITERS = 100
ROUNDS = 8


def time_files(files: dict[str, Path], runtime: str, threads: int, *, iters: int = ITERS,
               rounds: int = ROUNDS, parked: bool = False) -> dict[str, float]:
    """p50 ms of each file (one 4-D input each) by its key, all in one group. `parked`:
    worker threads stop spinning as each run returns (ONNX Runtime; OpenVINO's never spin),
    so no pause is needed between one file's block and the next (see fit/latency.py)."""
    import dataclasses

    from edgecnn.runtime.loader import runner_class
    from edgecnn.runtime.onnx_file import read_onnx
    from edgecnn.timing.harness import BenchCase, run_group
    from edgecnn.timing.loop import TimingPlan

    cls = runner_class(runtime)
    kwargs: dict[str, object] = {"threads": threads}
    if parked and "park_after_run" in {f.name for f in dataclasses.fields(cls.options_type)}:
        kwargs["park_after_run"] = True
    opts = cls.options_type.from_kwargs(runtime, kwargs)
    cases = []
    for name, path in files.items():
        shape = read_onnx(path).inputs[0].shape
        if not shape or len(shape) != 4 or any(d is None for d in shape[1:]):
            raise EdgeCNNError(f"{path}: timing needs one input of a fixed (N, C, H, W) shape")
        chw = (int(shape[1]), int(shape[2]), int(shape[3]))  # type: ignore[arg-type]
        cases.append(BenchCase(name, runtime, "fp32", 1, input_shape=chw,
                               make_runner=lambda p=path: cls(p, "cpu", opts)))
    plan = TimingPlan(warmup=3, iters=iters)  # pauses only after spinning runners
    records = run_group(cases, plan, peak_gmacs=None, rounds=rounds)
    if len(records) < len(cases):  # the harness stops early on Ctrl-C: pass it on
        raise KeyboardInterrupt
    return {r.model: r.latency_ms_p50 for r in records}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgecnn.timing.files",
                                description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="ONNX files")
    p.add_argument("--runtime", default="onnxruntime")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--iters", type=int, default=ITERS)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--parked", action="store_true",
                   help="worker threads stop spinning as each run returns")
    args = p.parse_args(argv)
    try:
        ms = time_files({f: Path(f) for f in args.files}, args.runtime, args.threads,
                        iters=args.iters, rounds=args.rounds, parked=args.parked)
    except EdgeCNNError as exc:
        print(f"edgecnn: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
