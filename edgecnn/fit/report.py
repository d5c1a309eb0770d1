"""What a fit leaves: DIR/fit.json (the record), DIR/report.md (the table, the latency
table's held-out error, the time of each phase) and DIR/pareto.png: held-out top-1 against
latency on a log axis, the budget as a line, the chosen point marked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecnn.tables import format_table


def write(out: Path, record: dict[str, Any], *,
          log: Callable[[str], None] = lambda line: None) -> Path:
    """Plot first, report.md next, fit.json last: fit.json is the commit point."""
    from edgecnn.fileio import atomic_write

    plot = plot_pareto(record, out / "pareto.png")
    atomic_write(out / "report.md", markdown(record, plot.name) + "\n")
    path = atomic_write(out / "fit.json", json.dumps(record, indent=2) + "\n")
    log(f"wrote {path}, {out / 'report.md'} and {plot}")
    return path


def markdown(record: dict[str, Any], plot: str) -> str:
    chosen = record["candidates"][record["chosen"]]
    dev = record["device"]
    lines = [f"# edgecnn fit: {record['family']} on {record['data']} within "
             f"{record['budget_ms']:g} ms",
             "",
             f"Device: {dev.get('cpu_model')} ({dev.get('cores')} cores), "
             f"{record['threads']} thread(s), batch 1.",
             "",
             f"**Chosen:** {chosen['name']}: {chosen['top1']:.2f}% held-out top-1, "
             f"{chosen['latency_ms']:.3f} ms measured as it will run; artifact "
             f"`{record['artifact']}`." + ("" if record["bound"] else
                                          " The budget did not bind."),
             "",
             f"Why: {record['reason']}.",
             "",
             _noise_line(record.get("noise") or {}),
             "",
             f"![accuracy against latency]({plot})",
             "",
             table(record["candidates"], record["chosen"], markdown=True),
             ""]
    check = record.get("latency_table") or {}
    if check.get("held_out"):
        lines += ["Per-layer latency table, held-out grid points (measured whole):", "",
                  format_table([[k, f"{v['measured_ms']:.3f}", f"{v['predicted_ms']:.3f}",
                                 f"{v['error_pct']:+.1f}%"] for k, v in
                                check["held_out"].items()],
                               ["point", "measured ms", "predicted ms", "error"],
                               markdown=True), ""]
    lines += ["Time per phase in this run (what an earlier run in this DIR finished is "
              "reused, in about no time): " + ", ".join(f"{k} {v:.0f} s"
                                                       for k, v in record["phases_s"].items())]
    return "\n".join(lines)


def _noise_line(noise: dict[str, Any]) -> str:
    if not noise.get("timed_twice"):
        return "Noise band: not measured (no candidate was timed whole)."
    return (f"Noise band: {noise['band']:.1%} ({noise['timed_twice']} timed twice in the same "
            "run); a candidate meets the budget with that much to spare"
            + ("." if noise["conclusive"] else
               "; wider than 5% after two retries: the machine was busy, the result is "
               "inconclusive"))


def table(rows: list[dict[str, Any]], chosen: int, *, markdown: bool = False) -> str:
    body = [["*" if i == chosen else "", r["name"], f"{r['latency_ms']:.3f}",
             r["latency_source"], "-" if r["top1"] is None else f"{r['top1']:.2f}",
             _trained(r), "yes" if r["meets_budget"] else "no"] for i, r in enumerate(rows)]
    return format_table(body, ["", "candidate", "ms", "latency", "top-1 %", "trained",
                               "meets"], markdown=markdown)


def _trained(row: dict[str, Any]) -> str:
    """How far a candidate was trained: successive halving stops the poor ones early, so
    their top-1 is a short schedule's."""
    if row["top1"] is None:
        return "-"
    if row.get("epochs"):
        return f"{row['epochs']} ep"
    return "pruned, fine-tuned" if row["prune"] else "exported"


def plot_pareto(record: dict[str, Any], path: Path) -> Path:
    """Trained candidates only (an untrained one has no accuracy); the Pareto front as a
    line, the budget as a dashed vertical, the chosen one ringed and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.bench.sweep import pareto_front
    from edgecnn.plotting import log_axis, place_labels, save_png

    rows = [r for r in record["candidates"] if r["top1"] is not None]
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for precision, marker in (("fp32", "o"), ("int8", "s")):
        pts = [r for r in rows if r["precision"] == precision]
        plain = [r for r in pts if not r["prune"]]
        if plain:
            ax.plot([r["latency_ms"] for r in plain], [r["top1"] for r in plain], marker,
                    alpha=0.75, label=f"{precision}")
        cut = [r for r in pts if r["prune"]]
        if cut:
            ax.plot([r["latency_ms"] for r in cut], [r["top1"] for r in cut], "D",
                    alpha=0.85, label=f"{precision}, pruned")
    front = pareto_front([(r["latency_ms"], r["top1"]) for r in rows])
    ax.plot(*zip(*front), "-", color="0.5", alpha=0.6, label="Pareto front")
    ax.axvline(record["budget_ms"], color="tab:red", ls="--", lw=1.2,
               label=f"budget {record['budget_ms']:g} ms")
    chosen = record["candidates"][record["chosen"]]
    ax.plot([chosen["latency_ms"]], [chosen["top1"]], "o", ms=16, mfc="none",
            mec="tab:red", mew=2, label="chosen")
    ax.set_xscale("log")
    log_axis(ax.xaxis)
    ax.margins(0.15)
    where = "the device" if record["device"].get("remote") else "this machine"
    ax.set(xlabel=f"latency, batch 1, measured on {where} (ms, log)",
           ylabel="held-out top-1 (%), after its epochs",
           title=f"{record['family']} on {record['data']}: accuracy vs latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    place_labels(ax, [(r["latency_ms"], r["top1"]) for r in rows],
                 [f"{r['alpha']:g}/{r['resolution']}" + (f" -{r['prune']:.0%}" if r["prune"]
                                                         else "")
                  + (f", {r['epochs']} ep" if r.get("epochs") else "") for r in rows])
    return save_png(fig, path, tight=False)
