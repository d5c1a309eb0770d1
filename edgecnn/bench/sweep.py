"""`edgecnn sweep`: the MobileNet paper's alpha x rho grid, reproduced on your hardware.

For every (alpha, resolution) point: optionally train on a data set, export (fp32, and int8
/ fp16 when asked), benchmark every runtime and precision at batch 1, and collect params,
MACs, latency and accuracy into one table and two plots: accuracy vs latency with the
Pareto front (trained sweeps), and latency vs MACs. Works for any family with a width
multiplier (SqueezeNet, SqueezeNext, MobileNet v2/v3...). Each point's outputs stay in its
own directory, and a point whose artifact already exists is reused, so an interrupted sweep
picks up where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgecnn.bench.harness import BenchRecord
from edgecnn.bench.run import BenchConfig, run_bench
from edgecnn.errors import EdgeCNNError
from edgecnn.tables import format_table


@dataclass(frozen=True)
class SweepConfig:
    model: str
    alphas: tuple[float, ...]
    resolutions: tuple[int, ...]
    out: Path
    bench: BenchConfig  # runtimes, precisions, threads, timing plan (batches are ignored: 1)
    train: bool = False
    data: str | None = None  # training and accuracy data (required with train)
    epochs: int = 10


def run_sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    if cfg.train and not cfg.data:
        raise EdgeCNNError("--train needs --data (the data set to train and evaluate on)")
    cfg.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for alpha in cfg.alphas:
        for res in cfg.resolutions:
            point = cfg.out / f"{cfg.model}-a{alpha:g}-r{res}"
            artifact = _artifact(cfg, alpha, res, point, log)
            bench = replace(cfg.bench, batches=(1,), data=cfg.data if cfg.train else None)
            records, cond = run_bench([str(artifact)], bench)
            rows += [_row(r, alpha, res) for r in records]
            log(f"{point.name}: " + ", ".join(
                f"{r.runtime} {r.precision} {r.latency_ms_p50:.3f} ms" for r in records))
    (cfg.out / "sweep.json").write_text(json.dumps({"conditions": cond, "rows": rows},
                                                   indent=2), encoding="utf-8")
    (cfg.out / "sweep.md").write_text(sweep_table(rows, markdown=True) + "\n", encoding="utf-8")
    plot_sweep(rows, cfg.out, title=f"{cfg.model} alpha x resolution")
    return rows


def _artifact(cfg: SweepConfig, alpha: float, res: int, point: Path,
              log: Callable[[str], None]) -> Path:
    from edgecnn.export.api import export
    from edgecnn.export.spec import CheckpointSource, ExportSpec, Int8Spec, ZooSource

    artifact = point / "artifact"
    if (artifact / "export.json").is_file():
        log(f"{point.name}: reusing {artifact}")
        return artifact
    source = ZooSource(cfg.model, alpha=alpha, resolution=res)
    if cfg.train:
        from edgecnn.train import TrainConfig, train

        run = point / "train"
        if not (run / "best.pt").is_file():
            train(TrainConfig(model=cfg.model, data=str(cfg.data), out=str(run), alpha=alpha,
                              resolution=res, epochs=cfg.epochs), force=run.exists(),
                  log=lambda line: None)
        source = CheckpointSource(str(run / "best.pt"))
    int8 = Int8Spec(str(cfg.data) if cfg.train else "random") \
        if "int8" in cfg.bench.precisions else None
    export(ExportSpec(source, int8=int8, output=str(artifact), dynamic_batch=True, force=True))
    return artifact


def _row(r: BenchRecord, alpha: float, res: int) -> dict[str, Any]:
    return {"alpha": alpha, "resolution": res, "runtime": r.runtime, "precision": r.precision,
            "params": r.params, "macs": r.macs, "latency_ms_p50": r.latency_ms_p50,
            "latency_ms_p99": r.latency_ms_p99, "throughput_ips": r.throughput_ips,
            "accuracy_top1_pct": r.accuracy_top1_pct, "file_size_mb": r.file_size_mb}


def sweep_table(rows: list[dict[str, Any]], *, markdown: bool = False) -> str:
    acc = any(r["accuracy_top1_pct"] is not None for r in rows)
    headers = ["alpha", "res", "runtime", "prec", "params", "MACs", "p50 ms", "p99 ms"]
    headers += ["top-1 %"] if acc else []
    table = [[r["alpha"], r["resolution"], r["runtime"], r["precision"], r["params"], r["macs"],
              f"{r['latency_ms_p50']:.3f}", f"{r['latency_ms_p99']:.3f}"]
             + ([f"{r['accuracy_top1_pct']:.2f}"] if acc else []) for r in rows]
    return format_table(table, headers, markdown=markdown)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points no other point beats on both: lower latency, higher acc."""
    front, best = [], float("-inf")
    for lat, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((lat, acc))
            best = acc
    return front


def plot_sweep(rows: list[dict[str, Any]], out: Path, *, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(f"{r['runtime']} {r['precision']}", []).append(r)
    written = []
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, rs in series.items():
        ax.loglog([r["macs"] for r in rs], [r["latency_ms_p50"] for r in rs], "o", label=label)
    ax.set(xlabel="multiply-adds per image", ylabel="p50 latency, batch 1 (ms)",
           title=f"{title}: latency vs MACs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency_vs_macs.png", dpi=120)
    plt.close(fig)
    written.append(out / "latency_vs_macs.png")
    if any(r["accuracy_top1_pct"] is not None for r in rows):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for label, rs in series.items():
            pts = [(r["latency_ms_p50"], r["accuracy_top1_pct"]) for r in rs]
            ax.plot(*zip(*pts), "o", label=label, alpha=0.7)
            front = pareto_front(pts)
            ax.plot(*zip(*front), "-", alpha=0.6)
            for r in rs:
                ax.annotate(f"{r['alpha']:g}/{r['resolution']}",
                            (r["latency_ms_p50"], r["accuracy_top1_pct"]), fontsize=6)
        ax.set(xlabel="p50 latency, batch 1 (ms)", ylabel="top-1 (%)",
               title=f"{title}: accuracy vs latency (lines: Pareto fronts)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_latency.png", dpi=120)
        plt.close(fig)
        written.append(out / "accuracy_vs_latency.png")
    return written
