"""Run ONNX files through edgecnn's runtime on this machine and say which kernels ran.

Made to run inside the arm64 userland (see README.md beside this), with the torch-free
runtime only, to compare its logits with another machine's:

    deploy/arm64/python.sh deploy/arm64/infer.py --inputs x.npy --out results/ a.onnx b.onnx

For every file: the logits of `inputs` (a float32 NCHW .npy) through `edgecnn.runtime.load`
(ONNX Runtime, CPU), written to OUT/<n>.npy, and the operators ONNX Runtime's profiler saw
run, counted by kernel (op type and execution provider) after graph optimization: the
question for an int8 file is whether its convolutions ran as QLinearConv (integer kernels)
or as DequantizeLinear + a float Conv. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np


def logits(path: Path, x: np.ndarray, threads: int) -> tuple[np.ndarray, str]:
    """All of x through the runtime, in batches the file accepts (a static batch of 1
    is fed one image at a time)."""
    from edgecnn.runtime import load

    with load(path, runtime="onnxruntime", device="cpu", threads=threads) as model:
        batch = model.runner.input.shape[0]
        step = len(x) if batch is None else batch
        out = [model.infer(x[i:i + step]) for i in range(0, len(x), step)]
        return np.concatenate(out), model.describe()


def kernels(path: Path, x: np.ndarray, threads: int) -> dict[str, int]:
    """{"QLinearConv/CPUExecutionProvider": n, ...} from one profiled run of x[:1] (the
    session is configured as the runtime's: all graph optimizations, same threads)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(path), sess_options=so,
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        session.run(None, {name: x[:1]})
        events = json.loads(Path(session.end_profiling()).read_text())
    counts: collections.Counter[str] = collections.Counter()
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            counts[f"{args.get('op_name')}/{args.get('provider')}"] += 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="ONNX files (or artifact directories)")
    p.add_argument("--inputs", type=Path, required=True, help="float32 NCHW batch (.npy)")
    p.add_argument("--out", type=Path, required=True, help="directory for <n>.npy logits")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="also count the kernels that ran")
    args = p.parse_args(argv)

    import onnxruntime as ort

    from edgecnn.errors import EdgeCNNError
    from edgecnn.fileio import atomic_file

    x = np.load(args.inputs).astype(np.float32, copy=False)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.machine(), "python": platform.python_version(),
              "onnxruntime": ort.__version__, "numpy": np.__version__, "files": []}
    try:
        for n, path in enumerate(args.files):
            out, runtime = logits(path, x, args.threads)
            with atomic_file(args.out / f"{n}.npy") as f:
                np.save(f, out)
            entry = {"file": str(path), "logits": f"{n}.npy", "runtime": runtime}
            if args.profile:
                onnx_file = path / "model.onnx" if path.is_dir() else path
                entry["kernels"] = kernels(onnx_file, x, args.threads)
            report["files"].append(entry)
    except EdgeCNNError as exc:
        print(f"infer.py: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
