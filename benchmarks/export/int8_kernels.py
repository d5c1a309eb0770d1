"""Where int8's time goes, per kind of layer: ONNX Runtime's profiler on each edge family's
fp32 file and on it quantized whole (every block int8, the cpu-x86 scheme), kernel time per
run summed by layer kind (bench/roofline.py's kinds).

    python benchmarks/export/int8_kernels.py    # after benchmarks/export/int8_families.py

The per-kind ratios bound what any placement of Q/DQ pairs can give: a model cannot run
int8 faster than its layers' kernels do. Reads the fp32 files int8_families.py exported
(runs/bench-export/families/*/model.onnx); 200 profiled runs per file, batch 1, 1 thread,
the two files of a model in 10 alternating blocks. Writes int8_kernels.{json,md} here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FAMILIES = HERE.parents[1] / "runs" / "bench-export" / "families"
KINDS = ("pointwise", "depthwise", "dense", "other")


def kind_ms(paths: list[Path], runs: int = 200, threads: int = 1,
            rounds: int = 10) -> list[dict[str, float]]:
    """Per file, ms per run by layer kind: one profiled session each, the sessions run in
    alternating blocks of runs with a settle pause (the machine's speed drifts within a
    minute: only interleaved figures compare), each node's median over its runs."""
    import onnxruntime as ort

    from edgecnn.bench.roofline import layer_kinds, profiled_kind

    warmup, per_round = 5, max(1, runs // rounds)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = []
        for i, path in enumerate(paths):
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp, f"p{i}"))
            sessions.append(ort.InferenceSession(str(path), so,
                                                 providers=["CPUExecutionProvider"]))
        feed = []
        for session in sessions:
            inp = session.get_inputs()[0]
            shape = [d if isinstance(d, int) else 1 for d in inp.shape]
            feed.append({inp.name: np.random.default_rng(0).standard_normal(
                shape, dtype=np.float32)})
        for _ in range(rounds):
            for session, x in zip(sessions, feed):
                time.sleep(0.1)  # the other session's workers go idle
                for _ in range(warmup + per_round):
                    session.run(None, x)
        profiles = [json.loads(Path(s.end_profiling()).read_text()) for s in sessions]
    out = []
    for path, events in zip(paths, profiles):
        kinds = layer_kinds(path)
        per_node: dict[str, list[float]] = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_node.setdefault(e["name"], []).append(e["dur"] / 1e3)
        ms = dict.fromkeys(KINDS, 0.0)
        for name, durations in per_node.items():
            timed = [d for k, d in enumerate(durations) if k % (warmup + per_round) >= warmup]
            ms[profiled_kind(kinds, name)[1]] += float(np.median(timed or durations))
        out.append(ms)
    return out


def main() -> int:
    from edgecnn.host import cpu_model

    import onnx

    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.quantize import preprocess, quantize
    from edgecnn.export.targets import load_target

    scheme = load_target("cpu-x86").int8
    rows = {}
    for art in sorted(p for p in FAMILIES.iterdir() if (p / "model.onnx").is_file()):
        fp32 = onnx.load(str(art / "model.onnx"))
        side = fp32.graph.input[0].type.tensor_type.shape.dim[2].dim_value
        x = np.random.default_rng(0).standard_normal((16, 3, side, side), dtype=np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            whole = Path(tmp, "int8.onnx")  # every block int8: no speed search
            onnx.save(quantize(preprocess(fp32), CalibrationReader(x), scheme), str(whole))
            f, q = kind_ms([art / "model.onnx", whole])
        rows[art.name] = {"fp32_ms": f, "int8_ms": q}
        print(art.name, {k: f"{f[k]:.3f}->{q[k]:.3f}" for k in KINDS}, flush=True)
    cond = {"cpu": cpu_model(), "cores": os.cpu_count(), "load": os.getloadavg()[0],
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    (HERE / "int8_kernels.json").write_text(json.dumps({"conditions": cond, "rows": rows},
                                                       indent=2) + "\n")
    md = ["# int8 kernels against fp32, per kind of layer", "",
          f"`python benchmarks/export/int8_kernels.py`, {cond['date_utc']} UTC, {cond['cpu']} "
          f"({cond['cores']} cores, load {cond['load']:.1f}). ONNX Runtime's profiler, batch 1, "
          "1 thread, the two files of a model profiled in 10 alternating blocks of 20 runs: "
          "median kernel time per run of each node, summed per kind (Q/DQ and "
          "other unfused nodes in `other`); fp32: int8_families.py's model.onnx, int8: that "
          "file quantized whole with the cpu-x86 scheme (7-bit weights on this CPU). "
          "`x` = fp32 ms / int8 ms.", "",
          "| model | " + " | ".join(f"{k} ms fp32 -> int8 (x)" for k in KINDS) + " | total |",
          "|---|" + "---|" * (len(KINDS) + 1)]
    for name, r in rows.items():
        f, q = r["fp32_ms"], r["int8_ms"]
        cells = [f"{f[k]:.3f} -> {q[k]:.3f} ({f[k] / q[k]:.2f}x)" if q[k] else "-" for k in KINDS]
        tf, tq = sum(f.values()), sum(q.values())
        md.append(f"| {name} | " + " | ".join(cells) + f" | {tf:.3f} -> {tq:.3f} "
                  f"({tf / tq:.2f}x) |")
    (HERE / "int8_kernels.md").write_text("\n".join(md) + "\n")
    print("wrote int8_kernels.{json,md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
