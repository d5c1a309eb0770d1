"""The pipeline's summary: one table (accuracy, latency, size, MACs per variant) and a
markdown report with plots, written into the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecnn.bench.report import describe_conditions
from edgecnn.fileio import atomic_write
from edgecnn.pipeline.recipe import Recipe
from edgecnn.tables import format_table

HEADERS = ["variant", "top-1 %", "agree %", "p50 ms", "p99 ms", "speedup", "size MB", "MACs"]
NAMES = {"torch-eager": "PyTorch eager", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO",
         "tensorrt": "TensorRT"}


def summary_rows(bench: dict[str, Any], export_report: dict[str, Any]) -> list[list[Any]]:
    files = export_report.get("files", {})
    sizes = {v["precision"]: v for v in files.values()}
    rows = []
    for r in bench["records"]:
        name = f"{NAMES.get(r['runtime'], r['runtime'])} {r['precision']}"
        if r["runtime"] == "torch-eager":
            name += " (unpruned)"
        size = sizes.get(r["precision"], {}) if r["runtime"] != "torch-eager" else {}
        rows.append([
            name, _fmt(r["accuracy_top1_pct"], "{:.2f}"), _fmt(r["agreement_top1_pct"], "{:.1f}"),
            f"{r['latency_ms_p50']:.3f}", f"{r['latency_ms_p99']:.3f}",
            _fmt(r["speedup_vs_baseline"], "{:.2f}x"),
            _fmt(size.get("bytes", 0) / 2**20 if size else None, "{:.3f}"),
            _fmt(r["macs"], "{:,}"),
        ])
    return rows


def write_report(recipe: Recipe, out: Path, bench: dict[str, Any], artifact: Path,
                 timings: dict[str, float]) -> dict[str, Any]:
    export_report = json.loads((artifact / "export.json").read_text(encoding="utf-8"))
    rows = summary_rows(bench, export_report)
    table = format_table(rows, HEADERS)
    plots = _plots(bench, out)
    lines = [
        f"# edgecnn pipeline: {recipe.model} alpha {recipe.alpha:g} at {recipe.resolution} px "
        f"on {recipe.data}", "",
        format_table(rows, HEADERS, markdown=True), "",
        describe_conditions(bench["conditions"], markdown=True), "",
        "## What each stage did", "",
        *_stage_notes(recipe, export_report, out), "",
        *[f"![{p.stem}]({p.name})" for p in plots],
    ]
    if (out / "train" / "curves.png").is_file():
        lines.append("![training curves](train/curves.png)")
    atomic_write(out / "report.md", "\n".join(lines) + "\n")
    summary = {"table": table, "rows": rows, "timings_s": timings}
    atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _stage_notes(recipe: Recipe, export_report: dict[str, Any], out: Path) -> list[str]:
    notes = []
    metrics = out / "train" / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text(encoding="utf-8"))
        notes.append(f"- train: {recipe.train.epochs} epochs, best val top-1 "
                     f"{100 * m.get('best_val_acc', 0):.2f}% at epoch {m.get('best_epoch')}")
    pruning = export_report.get("pruning")
    if pruning:
        notes.append(f"- prune ({pruning.get('method')}): MACs {pruning.get('macs_before'):,} -> "
                     f"{pruning.get('macs_after'):,}; top-1 {pruning.get('top1_before')} -> "
                     f"{pruning.get('top1_pruned')} pruned -> {pruning.get('top1_after')} after "
                     f"{recipe.prune.finetune_epochs} fine-tuning epochs")
    guard = (export_report.get("int8") or {}).get("guard")
    if isinstance(guard, dict):
        steps = [f"{s.get('step')} {s.get('method', '')}".strip()
                 + (f" with {len(s['float_layers'])} layers in float" if s.get("float_layers")
                    else "") + f": int8 top-1 {s.get('top1_int8')}% (drop {s.get('drop')} pts)"
                 for s in guard.get("steps", [])]
        notes.append(f"- int8 accuracy guard ({'passed' if guard.get('passed') else 'FAILED'}, "
                     f"fp32 top-1 {guard.get('top1_fp32')}%): " + "; ".join(steps))
    for w in export_report.get("warnings", []):
        notes.append(f"- warning: {w}")
    return notes


def _plots(bench: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = bench["records"]
    labels = [f"{NAMES.get(r['runtime'], r['runtime'])}\n{r['precision']}" for r in recs]
    p50 = [r["latency_ms_p50"] for r in recs]
    p99 = [r["latency_ms_p99"] for r in recs]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(labels, p50, color="#4c72b0", label="p50")
    ax.errorbar(labels, p50, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p99)]],
                fmt="none", ecolor="black", capsize=4, label="to p99")
    ax.set(ylabel="latency per batch (ms)", title="latency by variant (bar p50, whisker p99)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written = [path]
    if all(r["accuracy_top1_pct"] is not None for r in recs):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for r, label in zip(recs, labels):
            ax.plot(r["latency_ms_p50"], r["accuracy_top1_pct"], "o")
            ax.annotate(label.replace("\n", " "), (r["latency_ms_p50"], r["accuracy_top1_pct"]),
                        fontsize=7)
        ax.set(xlabel="p50 latency (ms)", ylabel="held-out top-1 (%)",
               title="accuracy vs latency")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path = out / "accuracy_vs_latency.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else spec.format(value)
