"""The pipeline's summary: one table (accuracy, latency, size, MACs per variant) and a
markdown report with plots, written into the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgecnn.bench.machine import noisy_reasons
from edgecnn.bench.report import describe_conditions
from edgecnn.export.decision import Policy
from edgecnn.fileio import atomic_write
from edgecnn.pipeline.recipe import Recipe
from edgecnn.tables import format_table
from edgecnn.timing.stats import NOISE_LIMIT

HEADERS = ["variant", "top-1 %", "agree % vs fp32", "p50 ms", "p99 ms", "speed-up",
           "roofline %", "size MB", "MACs"]
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
            _fmt(r["speedup_vs_baseline"], "{:.2f}x"), _fmt(r.get("roofline_pct"), "{:.0f}"),
            _fmt(size.get("bytes", 0) / 1e6 if size else None, "{:.2f}"),  # MB = 10^6 bytes
            _fmt(r["macs"], "{:,}"),
        ])
    return rows


def write_report(recipe: Recipe, out: Path, bench: dict[str, Any], artifact: Path,
                 timings: dict[str, float]) -> dict[str, Any]:
    export_report = json.loads((artifact / "export.json").read_text(encoding="utf-8"))
    rows = summary_rows(bench, export_report)
    table = format_table(rows, HEADERS) + "\n\n" + columns_note(bench)
    said = verdicts(bench, export_report, recipe)
    table += "\n\n" + "\n".join(said)
    plots = _plots(bench, out)
    lines = [
        f"# edgecnn pipeline: {recipe.model} alpha {recipe.alpha:g} at {recipe.resolution} px "
        f"on {recipe.data}", "", *[f"- {line}" for line in said], "",
        format_table(rows, HEADERS, markdown=True), "",
        "> " + columns_note(bench), "",
        describe_conditions(bench["conditions"], markdown=True, bench_columns=False), "",
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


PRUNE_BUDGET = 1.0  # top-1 points pruning may cost before the summary says it cost too much
INT8_PAYS = Policy.worth  # the export verdict's own bar (export/decision.py)


def verdicts(bench: dict[str, Any], export_report: dict[str, Any], recipe: Recipe
             ) -> list[str]:
    """What pruning and int8 bought, one plain sentence each, from the benchmark's own rows
    (ONNX Runtime, the recipe's threads): the summary a first-time user reads."""
    said = []
    pruning = export_report.get("pruning") or {}
    before, after = pruning.get("top1_before"), pruning.get("top1_after")
    if before is not None and after is not None and pruning.get("macs_before"):
        cut = 1 - pruning["macs_after"] / pruning["macs_before"]
        lost = before - after
        said.append(f"Pruning removed {cut:.0%} of the multiply-adds and "
                    + (f"cost {lost:.2f} points of held-out top-1 ({before:.2f}% -> {after:.2f}%)"
                       if lost > 0 else f"cost no held-out top-1 ({before:.2f}% -> {after:.2f}%)")
                    + (f", more than the {PRUNE_BUDGET:g} point it may." if lost > PRUNE_BUDGET
                       else "."))
    int8 = export_report.get("int8") or {}
    if int8.get("written") is False:
        said.append(f"int8 not produced: {int8.get('reason')}.")
        return said
    rows = [r for r in bench["records"]
            if r["runtime"] == "onnxruntime" and r.get("latency_ms_p50")]
    ms = {r["precision"]: r["latency_ms_p50"] for r in rows}
    if "fp32" in ms and "int8" in ms:
        ratio = ms["fp32"] / ms["int8"]
        cond = bench["conditions"]
        threads = cond.get("threads")
        where = f"in ONNX Runtime at {threads} thread{'s' if threads != 1 else ''} on this CPU"
        # the load, and these two rows' own noise: not another row's (PyTorch eager's)
        noisy = noisy_reasons(cond.get("before") or {}, cond.get("after") or {},
                              cond.get("cpu_cores"),
                              {f"ONNX Runtime {r['precision']}": r["noise_pct"] for r in rows
                               if r.get("noise_pct") is not None}, 100 * NOISE_LIMIT)
        if noisy:  # a busy machine: no verdict, and the export's own timing beside it
            export_x = ((int8.get("verdict") or {}).get("speedups") or {}).get("onnxruntime")
            said.append(
                f"int8 ran {ratio:.2f}x the speed of fp32 {where} ({ms['int8']:.3f} vs "
                f"{ms['fp32']:.3f} ms), but the benchmark was noisy ({noisy[0]}), so it "
                "cannot tell whether int8 pays here"
                + (f" (the export timed {export_x:.2f}x)" if export_x else "")
                + "; `edgecnn bench` on an idle machine times it again.")
            return said
        said.append(
            f"int8 runs {ratio:.2f}x as fast as fp32 {where} ({ms['int8']:.3f} vs "
            f"{ms['fp32']:.3f} ms)." if ratio >= INT8_PAYS else
            f"int8 does not pay {where}: {ratio:.2f}x the speed of fp32 ({ms['int8']:.3f} vs "
            f"{ms['fp32']:.3f} ms, under {INT8_PAYS:g}x), so deploy model.onnx here.")
    return said


def columns_note(bench: dict[str, Any]) -> str:
    """What the table's columns measure, in one paragraph: its own columns only."""
    recs = bench["records"]
    base = next((r["baseline"] for r in recs if r.get("baseline")), None)
    base_text = {"torch-eager fp32": "PyTorch eager fp32 on the unpruned model"}.get(
        base or "", base or "the first fp32 row")
    return ("top-1 %: held-out accuracy. agree % vs fp32: share of held-out images whose "
            "top-1 class equals the fp32 model's in the same runtime. speed-up: p50 of "
            f"{base_text} / p50 of the row, same batch, so it includes what pruning saved. "
            "roofline %: the sum over layers of max(MACs / peak, bytes / bandwidth) at the "
            "machine's measured peaks, over p50: how close the variant runs to the machine's "
            "limit (per layer kind below). "
            "size MB: the ONNX file, MB = 10^6 bytes. MACs: multiply-adds per image.")


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
    int8 = export_report.get("int8") or {}
    if int8.get("written") is False:  # the export decided against an int8 file: no row
        notes.append(f"- int8 not produced: {int8.get('reason')}")
    guard = int8.get("guard")
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
    from edgecnn.plotting import save_png

    recs = bench["records"]
    written = []
    figures = [("latency.png", latency_figure(recs))]
    if all(r["accuracy_top1_pct"] is not None for r in recs):
        figures.append(("accuracy_vs_latency.png", accuracy_figure(recs)))
    for name, fig in figures:
        written.append(save_png(fig, out / name))
    return written


def _label(r: dict[str, Any]) -> str:
    name = f"{NAMES.get(r['runtime'], r['runtime'])} {r['precision']}"
    return name + (" (unpruned)" if r["runtime"] == "torch-eager" else "")


def latency_figure(recs: list[dict[str, Any]]) -> Any:
    """Horizontal bars on a log scale (PyTorch eager is 10-50x the deployed variants), p50
    bar, whisker to p99, the values written beside each bar."""
    import matplotlib.pyplot as plt

    from edgecnn.plotting import log_axis

    labels = [_label(r) for r in recs]
    p50 = [r["latency_ms_p50"] for r in recs]
    p99 = [r["latency_ms_p99"] for r in recs]
    fig, ax = plt.subplots(figsize=(7.2, 0.5 * len(recs) + 1.4))
    y = list(range(len(recs)))[::-1]  # first record on top
    ax.barh(y, p50, color="#4c72b0", height=0.6, label="p50")
    ax.errorbar(p50, y, xerr=[[0] * len(p50), [b - a for a, b in zip(p50, p99)]], fmt="none",
                ecolor="black", capsize=3, label="to p99")
    ax.set_xscale("log")
    lo, hi = min(p50), max(p99)
    ax.set_xlim(lo / 2, hi * 6)  # room on the right for the value labels
    log_axis(ax.xaxis)
    for yi, a, b in zip(y, p50, p99):
        ax.text(b * 1.15, yi, f"{a:.3g} ms (p99 {b:.3g})", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(xlabel="latency per batch, ms (log scale)", title="latency by variant")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def accuracy_figure(recs: list[dict[str, Any]]) -> Any:
    """One marker per variant, named in a legend beside the axes: variants a few tenths of a
    point and a few microseconds apart cannot collide as text labels would."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    markers = "osD^vP*X"
    for i, r in enumerate(recs):
        ax.plot(r["latency_ms_p50"], r["accuracy_top1_pct"], markers[i % len(markers)],
                markersize=7, alpha=0.85, label=_label(r))
    ax.set_xscale("log")
    from edgecnn.plotting import log_axis

    log_axis(ax.xaxis)
    ax.set(xlabel="p50 latency per batch, ms (log scale)", ylabel="held-out top-1 (%)",
           title="accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else spec.format(value)
