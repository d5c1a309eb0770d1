"""Deep Compression on a trained SqueezeNet 1.1 (issue 23): magnitude pruning with the mask
held through fine-tuning, int8 weights, entropy coding (zstd), held-out top-1 in ONNX Runtime.

    python benchmarks/compress/deep_compression.py          # ~12 min on 2 idle cores

Steps, each by the real command line (the exact commands are recorded):
  1. `edgecnn train` SqueezeNet 1.1 on mnist5k at 32 px with the recipe of benchmarks/train
     (AdamW, 20 epochs), into runs/bench-compress/train (reused when present).
  2. `edgecnn export` dense: model.onnx is the fp32 reference (size and top-1), and
     model.int8.onnx the dense int8 row.
  3. `edgecnn export --prune R --prune-method unstructured --finetune-epochs E
     --finetune-optimizer adamw --int8 --calib-data mnist5k` for each R (CONFIGS): one-shot,
     iterative (--prune-steps) at the ratios where one-shot loses more than a point, and
     one run with the default fine-tuning (SGD) to show why AdamW is named.
  4. Every file is scored here, in ONNX Runtime through edgecnn.runtime, on the 1,000
     held-out digits; the weights are read back from the files: the share of zero conv
     weights, and whether a weight zero in fp32 is nonzero in int8 (must be 0).
  5. The fp32 sparse path: the pruned model.onnx with its weights moved to ONNX
     sparse_initializer (COO), loaded by ONNX Runtime and OpenVINO.
Sizes are export.json's (export/artifact.py file_sizes: raw, gzip -9, zstd -10).
Writes deep_compression.json and deep_compression.md next to this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
RUNS = ROOT / "runs" / "bench-compress"
RATIOS = (0.5, 0.7, 0.8, 0.9)
FINETUNE_EPOCHS = 8


def export(name: str, checkpoint: Path, *flags: str) -> tuple[Path, dict, str]:
    """One `edgecnn export` run: the artifact, its export.json and the command as shown."""
    out = RUNS / name
    cmd = [sys.executable, "-m", "edgecnn", "export", str(checkpoint), *flags, "-o", str(out),
           "--force", "--no-progress"]
    shown = f"python -m edgecnn export {checkpoint.relative_to(ROOT)} " + " ".join(flags) + \
        f" -o {out.relative_to(ROOT)}"
    print(f"\n$ {shown}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return out, json.loads((out / "export.json").read_text()), shown


def held_out_top1(path: Path) -> float:
    """Top-1 (percent) of one file in ONNX Runtime on the 1,000 held-out digits, preprocessed
    by the runtime's own preprocessing from the file's metadata."""
    from edgecnn.export.inputs import load_images
    from edgecnn.runtime import load
    from edgecnn.runtime.preprocess import Preprocess

    model = load(path, runtime="onnxruntime", threads=2)
    images = load_images("mnist5k", "val", Preprocess.from_metadata(model.metadata))
    x = images.array()
    # the export's default static batch of 1: one image per call (1,000 calls, under a second)
    logits = np.concatenate([model.infer(x[i:i + 1]) for i in range(len(x))])
    return round(100 * float((logits.argmax(1) == images.y).mean()), 2)


def conv_weights(path: Path) -> dict[str, np.ndarray]:
    """The 4-D initializers (conv weights; int8 files hold them quantized), by name."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer
            if len(t.dims) == 4}


def zero_share(weights: dict[str, np.ndarray]) -> float:
    return sum(int((w == 0).sum()) for w in weights.values()) / \
        sum(w.size for w in weights.values())


def zeros_kept(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray]) -> int:
    """fp32 weights that are 0 but nonzero in the int8 file (a quantizer with a nonzero weight
    zero point would make every pruned weight nonzero). Tensors are matched by shape in
    order: the quantizer renames them (NAME_quantized)."""
    lost = 0
    q = [w for w in int8.values() if w.dtype == np.int8]
    f = list(fp32.values())
    if [w.shape for w in q] != [w.shape for w in f]:
        raise SystemExit("the int8 file's conv weights do not match the fp32 file's")
    for a, b in zip(f, q):
        lost += int(((a == 0) & (b != 0)).sum())
    return lost


def sparse_fp32(path: Path, out: Path) -> dict:
    """model.onnx with every conv weight that is at least half zeros stored as a COO
    sparse_initializer (values fp32, flat int64 indices: the ONNX format's), then loaded
    by each runtime; ONNX Runtime makes them dense at load (graph.cc), OpenVINO may refuse."""
    import onnx
    import zstandard
    from onnx import helper, numpy_helper

    proto = onnx.load(str(path))
    keep, moved = [], 0
    for t in proto.graph.initializer:
        w = numpy_helper.to_array(t)
        if len(t.dims) == 4 and (w == 0).mean() >= 0.5:
            flat = w.reshape(-1)
            idx = np.flatnonzero(flat).astype(np.int64)
            values = numpy_helper.from_array(flat[idx], t.name)
            indices = numpy_helper.from_array(idx, f"{t.name}_indices")
            proto.graph.sparse_initializer.append(
                helper.make_sparse_tensor(values, indices, list(w.shape)))
            moved += 1
        else:
            keep.append(t)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    onnx.save(proto, str(out))
    data = out.read_bytes()
    row: dict = {"file": out.name, "tensors_sparse": moved, "bytes": len(data),
                 "zstd_bytes": len(zstandard.ZstdCompressor(level=10).compress(data))}
    import onnxruntime as ort

    dense = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    try:
        sparse = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        name = sparse.get_inputs()[0].name
        row["onnxruntime"] = "loads"
        row["onnxruntime_max_abs_vs_dense"] = float(np.abs(
            sparse.run(None, {name: x[:1]})[0] - dense.run(None, {name: x[:1]})[0]).max())
        row["top1"] = held_out_top1(out)
    except Exception as exc:  # noqa: BLE001  (what the runtime says is the finding)
        row["onnxruntime"] = f"refused: {str(exc).splitlines()[0][:200]}"
    try:
        import openvino as ov

        ov.Core().compile_model(str(out), "CPU")
        row["openvino"] = "loads"
    except Exception as exc:  # noqa: BLE001
        # its message is a stack of "Exception from FILE:LINE" lines; the last one says why
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        row["openvino"] = f"refused: {lines[-1][:200] if lines else type(exc).__name__}"
    return row


def classifier_share() -> dict:
    """conv10 (512 x classes) against the whole model, for 10 and for 1,000 classes."""
    from edgecnn.registry import create_model

    out = {}
    for n in (10, 1000):
        model = create_model("squeezenet1_1", num_classes=n)
        final = model.classifier[1]
        total = sum(p.numel() for p in model.parameters())
        mine = sum(p.numel() for p in final.parameters())
        out[str(n)] = {"params": total, "conv10_params": mine, "share": mine / total}
    return out


def row(config: str, ratio: float, artifact: Path, report: dict, file: str, ref: dict,
        command: str) -> dict:
    info = report["files"][file]
    path = artifact / file
    weights = conv_weights(path)
    pruning = report.get("pruning") or {}
    out = {"config": config, "ratio": ratio, "file": f"{artifact.name}/{file}",
           "precision": info["precision"],
           "sparsity": round(zero_share({k: w for k, w in weights.items()
                                         if w.dtype in (np.float32, np.int8)}), 4),
           "bytes": info["bytes"], "zstd_bytes": info["zstd_bytes"],
           "gzip_bytes": info["gzip_bytes"],
           "ratio_raw": round(ref["bytes"] / info["bytes"], 2),
           "ratio_zstd": round(ref["bytes"] / info["zstd_bytes"], 2),
           "top1": held_out_top1(path), "command": command,
           "finetune": {k: pruning.get(k) for k in ("finetune_epochs", "finetune_optimizer",
                                                     "finetune_lr", "top1_pruned",
                                                     "top1_after", "steps")}
           if pruning else None}
    out["delta"] = round(out["top1"] - ref["top1"], 2)
    if info["precision"] == "int8":
        out["float_layers"] = len(report["int8"]["float_layers"])
        out["zeros_lost_in_int8"] = zeros_kept(conv_weights(artifact / "model.onnx"), weights)
    return out


# (label, ratio, steps, optimizer): one-shot at each level; iterative (Han et al.'s
# prune/fine-tune in turn) where one-shot loses more than a point; the default SGD once.
# Every run fine-tunes FINETUNE_EPOCHS epochs in all (iterative: that many split over steps).
CONFIGS = [("one-shot", r, 1, "adamw") for r in RATIOS] + \
    [("iterative", 0.8, 4, "adamw"), ("iterative", 0.9, 4, "adamw"),
     ("one-shot, SGD (the default fine-tuning)", 0.8, 1, "sgd")]


def main() -> None:
    from benchmarks.train.run import RUNS as TRAIN_RUNS, _train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS)
    args = parser.parse_args()
    started = time.perf_counter()
    RUNS.mkdir(parents=True, exist_ok=True)
    train_args = TRAIN_RUNS["squeezenet1_1_r32"]
    checkpoint = RUNS / "train" / "best.pt"
    train_cmd = "python -m edgecnn train " + " ".join(train_args) + \
        f" --out {checkpoint.parent.relative_to(ROOT)}"
    if not checkpoint.exists():
        _train("train", train_args, RUNS, "--no-progress")
    trained = json.loads((checkpoint.parent / "metrics.json").read_text())

    calib = ("--int8", "--calib-data", "mnist5k")
    dense, report, cmd = export("dense", checkpoint, *calib)
    ref = {"bytes": report["files"]["model.onnx"]["bytes"],
           "top1": held_out_top1(dense / "model.onnx")}
    rows = [row("dense", 0.0, dense, report, "model.onnx", ref, cmd),
            row("dense", 0.0, dense, report, "model.int8.onnx", ref, cmd)]
    sparse_path = None
    for label, r, steps, opt in CONFIGS:
        epochs = args.finetune_epochs // steps
        flags = ["--prune", f"{r:g}", "--prune-method", "unstructured", "--finetune-epochs",
                 str(epochs)] + (["--prune-steps", str(steps)] if steps > 1 else []) + \
            (["--finetune-optimizer", opt] if opt != "sgd" else [])
        name = f"sparse{round(100 * r)}-{'iter' if steps > 1 else 'once'}-{opt}"
        art, report, cmd = export(name, checkpoint, *flags, *calib)
        files = ("model.onnx", "model.int8.onnx") if opt != "sgd" else ("model.int8.onnx",)
        rows += [row(label, r, art, report, f, ref, cmd) for f in files]
        if (r, steps, opt) == (0.8, 1, "adamw"):
            sparse_path = art / "model.onnx"
    sparse = sparse_fp32(sparse_path, RUNS / "model.sparse.onnx")
    sparse["source"] = str(sparse_path.relative_to(ROOT))
    sparse["ratio_raw"] = round(ref["bytes"] / sparse["bytes"], 2)
    sparse["ratio_zstd"] = round(ref["bytes"] / sparse["zstd_bytes"], 2)
    record = {"command": "python benchmarks/compress/deep_compression.py",
              "train_command": train_cmd, "trained_best_val_acc": trained["best_val_acc"],
              "finetune_epochs": args.finetune_epochs, "reference": ref, "rows": rows,
              "sparse_fp32": sparse, "classifier_share": classifier_share(),
              "machine": machine(), "seconds": round(time.perf_counter() - started)}
    (HERE / "deep_compression.json").write_text(json.dumps(record, indent=2) + "\n")
    from benchmarks.compress.report import write_markdown

    write_markdown(record, HERE / "deep_compression.md")


def machine() -> dict:
    from importlib.metadata import version

    from edgecnn.host import cpu_flags, cpu_model

    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni",
                        "avx_vnni") if f in cpu_flags()]
    return {"cpu": cpu_model(), "cores": len(__import__("os").sched_getaffinity(0)),
            "simd_flags": simd, "python": platform.python_version(),
            "versions": {p: version(p) for p in ("torch", "onnx", "onnxruntime", "openvino",
                                                 "zstandard")},
            "commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


if __name__ == "__main__":
    main()
