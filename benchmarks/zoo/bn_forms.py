"""BatchNorm that no conv precedes: kept as BatchNormalization, or a per-channel Mul + Add?

    nice -n 10 python benchmarks/zoo/bn_forms.py            # writes bn_forms.md

export/bnfold.py rewrites such BNs (DenseNet-BC, pre-activation ResNets) as Mul + Add
(OpenVINO's int8 compile crashes on DenseNet with BN kept: see its docstring); this is the
fp32 cost of that choice: the graph `edgecnn export` would write with BN kept (the
TorchScript exporter + onnxslim), and the same graph with every BatchNormalization replaced
by Mul(x, s) + Add(., t), s and t the (C, 1, 1) scale and shift. Batch 1, one thread, ONNX
Runtime and OpenVINO (f32) through the runtime's own runners; the two graphs are timed in
alternating blocks of 5 runs, median of the blocks.
"""

from __future__ import annotations

import copy
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from edgecnn.export.onnx_io import simplify, to_onnx_proto
from edgecnn.export.parity import openvino_runner, ort_runner
from edgecnn.export.source import resolve_source
from edgecnn.export.spec import ZooSource

MODELS = ("preact_resnet50", "densenet121")
RES, BLOCKS, RUNS = 224, 15, 5


def to_mul_add(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = copy.deepcopy(proto)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    nodes = []
    for n in g.node:
        if n.op_type != "BatchNormalization":
            nodes.append(n)
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[t]).astype(np.float64)
                                  for t in n.input[1:5])
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        s = gamma / np.sqrt(var + eps)
        for name, value in ((f"{n.name}_s", s), (f"{n.name}_t", beta - mean * s)):
            g.initializer.append(numpy_helper.from_array(
                value.astype(np.float32).reshape(-1, 1, 1), name))
        mid = f"{n.output[0]}_scaled"
        nodes += [helper.make_node("Mul", [n.input[0], f"{n.name}_s"], [mid]),
                  helper.make_node("Add", [mid, f"{n.name}_t"], [n.output[0]])]
    del g.node[:]
    g.node.extend(nodes)
    return out


def main() -> int:
    torch.set_num_threads(1)
    rows = []
    for name in MODELS:
        model = resolve_source(ZooSource(name, resolution=RES, num_classes=10)).model.eval()
        bn = simplify(to_onnx_proto(model, torch.zeros(1, 3, RES, RES)))
        graphs = {"BatchNormalization": bn, "Mul + Add": to_mul_add(bn)}
        count = sum(n.op_type == "BatchNormalization" for n in bn.graph.node)
        x = np.random.default_rng(0).standard_normal((1, 3, RES, RES), dtype=np.float32)
        for runtime, make in (("onnxruntime", ort_runner), ("openvino", openvino_runner)):
            runners = {k: make(p) for k, p in graphs.items()}
            a, b = (r.infer(x) for r in runners.values())
            times: dict[str, list[float]] = {k: [] for k in runners}
            for r in runners.values():
                for _ in range(3):
                    r.infer(x)
            for _ in range(BLOCKS):
                for k, r in runners.items():
                    t0 = time.perf_counter()
                    for _ in range(RUNS):
                        r.infer(x)
                    times[k].append((time.perf_counter() - t0) / RUNS * 1e3)
            bn_ms, ma_ms = (float(np.median(v)) for v in times.values())
            rows.append(f"| {name} | {count} | {runtime} | {bn_ms:.1f} | {ma_ms:.1f} | "
                        f"{ma_ms / bn_ms:.3f} | {float(np.abs(a - b).max()):.1e} |")
            print(rows[-1], flush=True)
    from edgecnn.host import cpu_model

    cpu = cpu_model()
    import onnxruntime
    import openvino

    text = [f"# {__doc__.splitlines()[0]}", "", __doc__.split("\n\n", 2)[2].strip(), "",
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu} (2 "
            f"cores shared with other jobs), {RES} px, onnxruntime {onnxruntime.__version__}, "
            f"openvino {openvino.__version__}, torch {torch.__version__}.", "",
            "| model | BNs | runtime | BN ms | Mul+Add ms | Mul+Add / BN | max abs diff |",
            "|---|---:|---|---:|---:|---:|---:|", *rows]
    Path(__file__).with_suffix(".md").write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
