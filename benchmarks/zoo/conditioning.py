"""Is a parity miss the export or fp32 itself? ONNX Runtime, OpenVINO and PyTorch fp32 each
against the same PyTorch model run in float64.

    nice -n 10 python benchmarks/zoo/conditioning.py squeezenext44 32,48,227  # conditioning.md

The model and inputs are those of `edgecnn export NAME --resolution R --num-classes 10`'s
parity check on random inputs (seed 0: initialized weights, BN statistics from a random
batch, 4 standard-normal images); the graph is the fp32 one it writes (TorchScript exporter,
onnxslim, export/bnfold.py). An export bug shows as ONNX Runtime and OpenVINO far from
float64 while PyTorch fp32 is close; ill-conditioning as all three off by the same order.
"""

from __future__ import annotations

import copy
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from edgecnn.export.bnfold import fold_batchnorms
from edgecnn.export.onnx_io import simplify, to_onnx_proto
from edgecnn.export.parity import parity_runners
from edgecnn.export.source import resolve_source
from edgecnn.export.spec import ZooSource


def main() -> int:
    name, sizes = sys.argv[1], [int(r) for r in sys.argv[2].split(",")]
    torch.set_num_threads(1)
    rows = []
    for res in sizes:
        model = resolve_source(ZooSource(name, resolution=res, num_classes=10)).model.eval()
        chans = model.config["in_chans"]
        x = np.random.default_rng(0).standard_normal((4, chans, res, res), dtype=np.float32)
        proto, _ = fold_batchnorms(simplify(to_onnx_proto(model, torch.zeros(1, chans, res,
                                                                              res))))
        with torch.no_grad():
            f32 = model(torch.from_numpy(x)).numpy().astype(np.float64)
            f64 = copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()
        ort, ov = parity_runners(proto)
        got = {k: np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))]).astype(
            np.float64) for k, r in (("ort", ort), ("ov", ov))}
        scale = max(1.0, float(np.abs(f64).max()))

        def rel(a: np.ndarray, b: np.ndarray) -> str:
            return f"{float(np.abs(a - b).max()) / scale:.2e}"

        rows.append(f"| {name} | {res} | {np.abs(f64).max():.4g} | {rel(f32, f64)} | "
                    f"{rel(got['ort'], f64)} | {rel(got['ov'], f64)} | {rel(got['ort'], f32)} "
                    f"| {rel(got['ov'], f32)} |")
        print(rows[-1], flush=True)
    from edgecnn.host import cpu_model

    cpu = cpu_model()
    text = ["# " + " ".join(__doc__.split("\n\n")[0].split()), "",
            " ".join(__doc__.split("\n\n", 2)[2].split()), "",
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu}, one "
            f"thread each. Max abs differences over the logit scale max(1, max |logit|) (the "
            f"parity check's scaling); fp64 = PyTorch float64.", "",
            "| model | px | max abs logit | torch fp32 vs fp64 | ORT vs fp64 | OpenVINO vs fp64 "
            "| ORT vs torch fp32 | OpenVINO vs torch fp32 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    Path(__file__).with_suffix(".md").write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
