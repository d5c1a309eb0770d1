"""Where edgecnn trails NNCF on SqueezeNet 1.1: the first convolution's input, u8 or s8.

    python benchmarks/tune/signed_input.py      # after peers.py (it reads peers' artifacts)

peers.md has edgecnn's tuned int8 of SqueezeNet 1.1 at 0.93-0.95x of NNCF in OpenVINO.
OpenVINO's per-layer counters put most of the gap in the first convolution: edgecnn's graph
quantizes the network input u8 with a zero point (the cpu-x86 recipe: u8 activations), NNCF
quantizes it s8 with none. This rewrites only that Q/DQ pair of model.int8.onnx to s8
symmetric (scale max(|low|, |high|) / 127 over the same range) and times the files in
OpenVINO f32 and ONNX Runtime at batch 1, 1 thread, in alternating blocks (edgecnn's
harness). Writes signed_input.md beside this file. Not a change to edgecnn: one int8 file
serves both runtimes, and the s8 input that helps OpenVINO costs ONNX Runtime far more.
"""

from __future__ import annotations

import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
ART = ROOT / "runs" / "bench-tune" / "peers" / "squeezenet1_1"


def signed_input(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with the network input's Q/DQ pair s8 symmetric over the same range."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == g.input[0].name)
    scale, zero = float(consts[q.input[1]]), int(consts[q.input[2]])
    low, high = (0 - zero) * scale, (255 - zero) * scale
    g.initializer.extend([
        numpy_helper.from_array(np.array(max(-low, high) / 127, np.float32), "signed_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "signed_zero")])
    for n in g.node:
        if n is q or (n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]):
            n.input[1], n.input[2] = "signed_scale", "signed_zero"
    return out


def main() -> None:
    from edgecnn.host import cpu_flags, cpu_model
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner
    from edgecnn.timing.harness import BenchCase, run_group
    from edgecnn.timing.loop import TimingPlan

    int8 = ART / "model.int8.onnx"
    if not int8.is_file():
        raise SystemExit(f"{int8} not found: run benchmarks/tune/peers.py first")
    with tempfile.TemporaryDirectory() as tmp:
        s8 = Path(tmp, "signed.onnx")
        onnx.save(signed_input(onnx.load(str(int8))), str(s8))
        files = {"edgecnn int8 (u8 input)": int8, "the same, s8 input": s8}
        cases = []
        for label, path in files.items():
            cases.append(BenchCase(label, "onnxruntime", "int8", 1, input_shape=(3, 224, 224),
                                   make_runner=lambda p=path: OrtRunner(
                                       p, "cpu", OrtOptions(threads=1))))
            cases.append(BenchCase(label, "openvino", "int8", 1, input_shape=(3, 224, 224),
                                   make_runner=lambda p=path: OvRunner(
                                       p, "cpu", OvOptions(threads=1))))
        sys.path.insert(0, str(HERE))
        from peers import _ov_ir_runner  # NNCF's output is OpenVINO IR, as peers.py runs it

        cases.append(BenchCase("NNCF", "openvino", "int8", 1, input_shape=(3, 224, 224),
                               make_runner=lambda: _ov_ir_runner(
                                   ART / "model.onnx", ART / "peer-nncf.int8.xml", 1)))
        records = run_group(cases, TimingPlan(iters=200), peak_gmacs=None, rounds=10)
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    lines = ["# SqueezeNet 1.1's first convolution: a u8 or an s8 input", "",
             f"`python benchmarks/tune/signed_input.py`, "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{cpu_model()} ({' '.join(flags)}), batch 1, 1 thread, 224 px; edgecnn's harness, "
             "10 interleaved rounds of 200 calls, p50. Files from peers.py's artifact.", "",
             "| file | runtime | p50 ms |", "|---|---|---:|"]
    lines += [f"| {r.model} | {r.runtime} | {r.latency_ms_p50:.3f} |" for r in records]
    (HERE / "signed_input.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
