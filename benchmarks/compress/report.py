"""deep_compression.md from deep_compression.json (written by deep_compression.py; run this
alone to re-render the page without re-running the benchmark).

    python benchmarks/compress/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MB = 1e6  # the papers' MB (decimal), as export's summary prints them


def shipped(record: dict) -> dict | None:
    """The smallest int8 file (zstd) within a point of the fp32 reference."""
    ok = [r for r in record["rows"] if r["precision"] == "int8" and r["delta"] >= -1.0]
    return min(ok, key=lambda r: r["zstd_bytes"]) if ok else None


def write_markdown(record: dict, path: Path) -> None:
    ref, m = record["reference"], record["machine"]
    best = shipped(record)
    lines = [
        "# Deep Compression on a trained SqueezeNet 1.1 (issue 23)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, shared with other engineers' jobs (sizes "
        f"and top-1 do not depend on it); SIMD flags {' '.join(m['simd_flags'])}. Python "
        f"{m['python']}, " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; {m['date']}, commit {m['commit']}; {record['seconds'] / 60:.0f} min in all.",
        "",
        f"Reproduce: `{record['command']}` (trains first: `{record['train_command']}`, "
        f"best held-out {100 * record['trained_best_val_acc']:.1f}%).",
        "",
        "SqueezeNet 1.1, 10 classes, trained on mnist5k at 32 px (4,000 train digits); every "
        "top-1 is measured here in ONNX Runtime on the 1,000 held-out digits, file by file. "
        "Ratios are against the fp32 dense `model.onnx` "
        f"({ref['bytes']:,} bytes, {ref['top1']:.2f}% held out). Sparsity is the share of "
        "zero conv weights read back from the file. zstd is level 10 "
        "(export.json's `zstd_bytes`, from `export/artifact.py file_sizes()`); the entropy "
        "coding step is zstd of the whole int8 file, in place of the paper's Huffman code.",
        "",
    ]
    if best:
        lines += [
            f"**Result:** the shipped file, `{best['file']}` compressed with zstd, is "
            f"{best['zstd_bytes']:,} bytes: **{best['ratio_zstd']:.1f}x** smaller than the "
            f"fp32 `model.onnx`, at {best['top1']:.2f}% held out ({best['delta']:+.2f} points "
            f"against the dense fp32 model's {ref['top1']:.2f}%) ({best['config']}, "
            f"{best['ratio']:.0%} of the weights zeroed).",
            "",
        ]
    lines += [
        "| config | file | sparsity | raw bytes | zstd bytes | ratio raw | ratio zstd | "
        "top-1 (ORT) | vs dense fp32 | fine-tuning | int8 zeros lost |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in record["rows"]:
        ft = r.get("finetune") or {}
        steps = len(ft.get("steps") or [])
        tune = "-" if not ft else (
            f"{ft['finetune_optimizer']} lr {ft['finetune_lr']:g}, "
            + (f"{steps} x {ft['finetune_epochs']} epochs" if steps > 1
               else f"{ft['finetune_epochs']} epochs"))
        lost = r.get("zeros_lost_in_int8")
        floats = r.get("float_layers")
        lines.append(
            f"| {r['config']} | `{r['file']}` | {100 * r['sparsity']:.1f}% | {r['bytes']:,} | "
            f"{r['zstd_bytes']:,} | {r['ratio_raw']:.2f}x | {r['ratio_zstd']:.2f}x | "
            f"{r['top1']:.2f}% | {r['delta']:+.2f} | {tune} | "
            + ("-" if lost is None else f"{lost}")
            + (f" ({floats} layers float)" if floats else "") + " |")
    lines += [
        "",
        "*int8 zeros lost*: conv weights that are 0 in the fp32 file and nonzero in the "
        "int8 one (int8 weights are symmetric, zero point 0, so a pruned weight stays exactly "
        "0; checked here file by file and in tests/test_export_prune.py).",
        "",
        "Each run's steps (held-out top-1 in PyTorch after pruning -> after fine-tuning):",
        "",
    ]
    for r in record["rows"]:
        ft = r.get("finetune") or {}
        if r["precision"] == "int8" and ft.get("steps"):
            steps = ", ".join(f"{100 * s['ratio']:.1f}%: {s['top1_pruned']:.1f} -> "
                              f"{s['top1_after']:.1f}" for s in ft["steps"])
            lines.append(f"- {r['config']} {r['ratio']:.0%}: {steps}")
    lines += ["", "Commands (each row's export):", ""]
    seen: set[str] = set()
    for r in record["rows"]:
        if r["command"] not in seen:
            seen.add(r["command"])
            lines.append(f"- `{r['command']}`")
    lines += ["", *_findings(record), ""]
    path.write_text("\n".join(lines))
    print("\n".join(lines))


def _iterative(record: dict) -> list[tuple[float, float, float]]:
    """(ratio, one-shot int8 delta, iterative int8 delta) where both ran with AdamW."""
    int8 = {(r["config"], r["ratio"]): r["delta"] for r in record["rows"]
            if r["precision"] == "int8"}
    return [(ratio, int8[("one-shot", ratio)], delta)
            for (config, ratio), delta in int8.items()
            if config == "iterative" and ("one-shot", ratio) in int8]


def _thousand_classes(record: dict) -> dict:
    """The shipped file's ratio scaled to a 1,000-class head (an estimate): conv10's added
    weights at 4 bytes in fp32, and at 1 byte times the zstd ratio int8 weights got, dense
    (the dense int8 file's) or pruned (the shipped file's against the dense int8 file)."""
    rows = record["rows"]
    best = shipped(record) or rows[1]
    dense8 = next(r for r in rows if r["precision"] == "int8" and r["ratio"] == 0.0)
    share = record["classifier_share"]
    added = share["1000"]["conv10_params"] - share["10"]["conv10_params"]
    fp32 = record["reference"]["bytes"] + 4 * added
    dense_rate = dense8["zstd_bytes"] / dense8["bytes"]
    sparse_rate = best["zstd_bytes"] / dense8["bytes"]
    head_dense, head_sparse = added * dense_rate, added * sparse_rate
    return {"fp32_1000": fp32, "head_dense": head_dense, "head_sparse": head_sparse,
            "ratio_dense_head": fp32 / (best["zstd_bytes"] + head_dense),
            "ratio_sparse_head": fp32 / (best["zstd_bytes"] + head_sparse)}


def _findings(record: dict) -> list[str]:
    ref, sp, share = record["reference"], record["sparse_fp32"], record["classifier_share"]
    ten, thousand = share["10"], share["1000"]
    extra = _thousand_classes(record)
    source = sp["source"].split("/")[-2] + "/model.onnx"
    dense_zstd = next(r["zstd_bytes"] for r in record["rows"] if r["file"] == source)
    best8 = (shipped(record) or record["rows"][1])["zstd_bytes"]
    return [
        "## What we found on the way",
        "",
        "- **One threshold for all layers emptied the classifier.** Global magnitude "
        "pruning (what `--prune-method unstructured` did before this benchmark) zeroed 98% of "
        "conv10 at a ratio of 0.8: its weights start at std 0.01 (as torchvision's) and stay "
        "an order of magnitude below the Fire layers' after training (mean |w| 0.026 against "
        "0.05-0.31). Every digit got one class: `--prune 0.8 --prune-method unstructured "
        "--finetune-epochs 5` gave 10.0% after pruning and 60.2% after fine-tuning. The "
        "output layer now keeps its weights (as structured pruning keeps every class) and "
        "the ratio is taken from the other layers, so the file's sparsity is still the share "
        "asked (export/prune.py; regression test in tests/test_export_prune.py).",
        "- **The default fine-tuning (SGD, lr 0.01) wrecks this model.** SqueezeNet has no "
        "BatchNorm and is trained with AdamW at 2e-3 (benchmarks/train). In exploration runs "
        "(not rows here), SGD at 0.01 took a 30%-pruned model from 97.3% to 17.6% in three "
        "epochs and a 50%-pruned one from 41.9% to 10.5%, while SGD at 0.001 or AdamW "
        "recovered both; the SGD row above is the same at 80%. `--finetune-optimizer adamw` "
        "fine-tunes with AdamW at a tenth of its from-scratch rate (2e-4), the rule SGD's "
        "0.01 already follows. The default stays SGD, so other pruning runs (the main job's "
        "structured pruning among them) are unchanged.",
        "- **Iterative pruning** (`--prune-steps N`: prune and fine-tune in turn, the sparsity "
        "of step k being ratio x (1 - (1 - k/N)^3), Zhu & Gupta 2017) is Han et al.'s "
        "procedure. One-shot lost a point or more in int8 from 80% on, so iterative rows "
        "were added at the same total epochs: int8 top-1 against dense fp32, one-shot -> "
        "iterative: " + "; ".join(
            f"{r:.0%}: {once:+.2f} -> {it:+.2f}" for r, once, it in _iterative(record))
        + ". At 90% neither is within a point with 8 epochs in all (the steps above show "
        "where the iterative run falls behind); more steps or epochs were not tried here.",
        "",
        "## The paper's figures beside ours",
        "",
        "- SqueezeNet paper (Iandola et al. 2016, Table 2), SqueezeNet 1.0 on ImageNet "
        "(1,000 classes): 4.8 MB fp32; Deep Compression (Han et al., ICLR 2016: pruning, "
        "trained quantization with shared weights, Huffman coding) with '33% sparsity' (from "
        "the sizes, about a third of the weights kept) gives 0.66 MB at 8 bits (7.3x, 363x "
        "smaller than AlexNet) and 0.47 MB at 6 bits (10.2x, 510x smaller than AlexNet), "
        "top-1 57.5% unchanged. Deep Compression on AlexNet: 240 MB -> 6.9 MB (35x); on "
        "VGG-16, 49x.",
        f"- Ours: 8-bit weights (7-bit range on the cpu-x86 recipe), zstd instead of Huffman, "
        f"no weight sharing; {ref['bytes'] / MB:.2f} MB fp32 -> the sizes above. Our int8 "
        "file stores every weight densely (ONNX has no sparse int8 Conv), so the zeros are "
        "removed by the entropy coder, not by an index format as in the paper.",
        f"- **10 classes instead of 1,000.** conv10 is 512 x classes: with 10 classes it is "
        f"{ten['conv10_params']:,} of {ten['params']:,} parameters "
        f"({100 * ten['share']:.1f}%); with 1,000 it would be "
        f"{thousand['conv10_params']:,} of {thousand['params']:,} "
        f"({100 * thousand['share']:.1f}%). With 10 classes our ratio is the feature "
        "layers' alone; the paper's 4.8 MB is 40% classifier, and pruned with the rest (our "
        "inference: a dense 8-bit conv10 would be 0.51 MB of its 0.66 MB, leaving too little "
        "for a third of the other 0.74M weights with their indices). An estimate from the "
        "rows above (not measured): a 1,000-class "
        f"SqueezeNet 1.1 is {extra['fp32_1000'] / MB:.2f} MB in fp32; with conv10 left "
        "dense, as `--prune-method unstructured` now does, its int8 weights alone add "
        f"{extra['head_dense'] / MB:.2f} MB after zstd (the dense int8 file's zstd ratio), "
        f"{extra['ratio_dense_head']:.1f}x in all; pruned as the other layers are (their "
        f"int8 zstd ratio), {extra['head_sparse'] / MB:.2f} MB, "
        f"{extra['ratio_sparse_head']:.1f}x. For a 1,000-class head, pruning the output "
        "layer too would be worth a second look.",
        "",
        "## A fp32 sparse path in ONNX Runtime?",
        "",
        "- ONNX has `GraphProto.sparse_initializer` (COO: values plus int64 indices). ONNX "
        "Runtime converts every sparse initializer to a dense one when it loads the graph "
        "(`onnxruntime/core/graph/graph.cc`: `SparseTensorProtoToDenseTensorProto`, \"Remove "
        "sparse_initializers from protobuf to save memory as they are converted to dense "
        "now\"), so the same dense Conv kernels run: a smaller file at best, never a faster "
        "model. Its one sparse kernel, `com.microsoft.SparseToDenseMatMul`, multiplies a "
        "sparse *input* by a dense matrix; there is no sparse Conv.",
        f"- Tried: `{sp['source']}` with its {sp['tensors_sparse']} conv weights that are at "
        f"least half zeros moved to sparse_initializer: {sp['bytes']:,} bytes raw "
        f"({sp['ratio_raw']:.2f}x), {sp['zstd_bytes']:,} zstd ({sp['ratio_zstd']:.2f}x). "
        f"ONNX Runtime: {sp['onnxruntime']}"
        + (f" (max abs logit difference to the dense file {sp['onnxruntime_max_abs_vs_dense']:.1e}"
           f", held-out top-1 {sp['top1']:.2f}%)" if sp.get("top1") is not None else "")
        + f"; OpenVINO: {sp['openvino']}. COO at fp32 costs 12 bytes per nonzero weight "
        "(4 value + 8 index) against 4 per dense weight, so raw it only pays below a third "
        f"of the weights kept. After zstd it is {dense_zstd - sp['zstd_bytes']:,} bytes "
        f"smaller than the same weights stored densely ({dense_zstd:,}), and still "
        f"{sp['zstd_bytes'] / best8:.1f}x the shipped int8 + zstd file: that file is the one "
        "to ship. A sparse fp32 file buys no speed: ONNX Runtime runs it dense and OpenVINO "
        "does not load it.",
    ]


if __name__ == "__main__":
    write_markdown(json.loads((HERE / "deep_compression.json").read_text()),
                   HERE / "deep_compression.md")
