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

from edgecnn.bench.run import BenchConfig
from edgecnn.errors import EdgeCNNError
from edgecnn.tables import format_table
from edgecnn.timing.harness import BenchRecord


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
    round_channels: int | None = None  # None: the paper's widths (--round-channels)


def run_sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Export every point first, then time all of them together like bench does: one
    interleaved group (every point, runtime and precision gets a block per round; a settle
    pause after each block of a runner whose workers spin), so a machine that drifts or a
    neighbour that wakes up taxes every point alike and the points of one sweep compare.
    Accuracy (trained sweeps) is a separate, untimed pass per point."""
    from edgecnn.bench.machine import conditions
    from edgecnn.bench.run import eval_data_for
    from edgecnn.bench.targets import make_cases, resolve_target
    from edgecnn.fileio import atomic_write
    from edgecnn.timing.harness import run_group

    if cfg.train and not cfg.data:
        raise EdgeCNNError("--train needs --data (the data set to train and evaluate on)")
    cfg.out.mkdir(parents=True, exist_ok=True)
    from edgecnn.progress import Bar, Ticker

    points, cases = {}, []
    grid = [(a, r) for a in cfg.alphas for r in cfg.resolutions]
    # A ticker, not a bar over the points: a point's export takes minutes in stages (fp32,
    # calibration, the guard), and the ticker shows the current one with its elapsed time.
    with Ticker("sweep") as ticker:
        def say(line: str) -> None:  # each line becomes the ticker's stage
            (ticker.write if ticker.bar is not None else log)(line)

        for i, (alpha, res) in enumerate(grid, 1):
            point = cfg.out / f"{cfg.model}-a{alpha:g}-r{res}"
            say(f"point {i}/{len(grid)}: {point.name}"
                + (f" (training {cfg.epochs} epochs, then export)" if cfg.train else ""))
            artifact = _artifact(cfg, alpha, res, point, say)
            target = replace(resolve_target(str(artifact), alpha=alpha, resolution=res,
                                            precisions=cfg.bench.precisions),
                             label=point.name)
            points[point.name] = (alpha, res, target)
            cases += make_cases(target, runtimes=cfg.bench.runtimes,
                                precisions=cfg.bench.precisions, batches=(1,),
                                threads=cfg.bench.threads, device=cfg.bench.device)[0]
    log(f"timing {len(cases)} cases interleaved in {cfg.bench.rounds} rounds")
    iters = cfg.bench.plan.iters
    with Bar(len(cases) * iters if iters else None, "timing", unit="call") as bar:
        records = run_group(cases, cfg.bench.plan, peak_gmacs=None, rounds=cfg.bench.rounds,
                            progress=bar.update)
    if cfg.train:
        _accuracy(records, cases, {k: eval_data_for(replace(cfg.bench, data=cfg.data),
                                                    t.input_shape, t.files)
                                   for k, (_, _, t) in points.items()})
    rows = [_row(r, *points[r.model][:2]) for r in records]
    for name in points:
        log(f"{name}: " + ", ".join(f"{r.runtime} {r.precision} {r.latency_ms_p50:.3f} ms"
                                    for r in records if r.model == name))
    cond = conditions(cfg.bench.threads)
    cond.update(rounds=cfg.bench.rounds, iters=cfg.bench.plan.iters,
                settle_s=cfg.bench.plan.settle_s, interleaved="all points in one group")
    atomic_write(cfg.out / "sweep.json", json.dumps(
        {"conditions": cond, "rows": rows, "out_of_order": out_of_order(rows)}, indent=2))
    atomic_write(cfg.out / "sweep.md", sweep_table(rows, markdown=True) + "\n")
    plot_sweep(rows, cfg.out, title=f"{cfg.model} alpha x resolution")
    return rows


def _accuracy(records: list[BenchRecord], cases: list, data: dict[str, Any]) -> None:
    """Held-out top-1 of every case, one runner at a time (not timed)."""
    from edgecnn.timing.harness import top1

    for record, case in zip(records, cases):
        runner = case.make_runner()
        runner.activate()
        try:
            images, labels = data[record.model]
            record.accuracy_top1_pct = 100 * float(
                (top1(runner, images, 1) == labels).mean())
        finally:
            runner.deactivate()


def out_of_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs of points (same runtime and precision) where more MACs ran faster by more than
    the noise band (the larger of the two p50-to-p90 spreads): latency should rise with
    MACs, and where it does not beyond the noise, the table says so."""
    found = []
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault((r["runtime"], r["precision"]), []).append(r)
    for rs in series.values():
        for a in rs:
            for b in rs:
                if a["macs"] < b["macs"] and a["latency_ms_p50"] > b["latency_ms_p50"]:
                    band = max(a["latency_ms_p90"] - a["latency_ms_p50"],
                               b["latency_ms_p90"] - b["latency_ms_p50"])
                    if a["latency_ms_p50"] - b["latency_ms_p50"] > band:
                        found.append({"fewer_macs": f"a{a['alpha']:g} r{a['resolution']}",
                                      "more_macs": f"a{b['alpha']:g} r{b['resolution']}",
                                      "runtime": a["runtime"], "precision": a["precision"],
                                      "p50_ms": [a["latency_ms_p50"], b["latency_ms_p50"]]})
    return found


def _artifact(cfg: SweepConfig, alpha: float, res: int, point: Path,
              log: Callable[[str], None]) -> Path:
    from edgecnn.export.api import export
    from edgecnn.export.spec import CheckpointSource, ExportSpec, Int8Spec, ZooSource

    artifact = point / "artifact"
    if (artifact / "export.json").is_file():
        log(f"{point.name}: reusing {artifact}")
        return artifact
    source = ZooSource(cfg.model, alpha=alpha, resolution=res,
                       round_channels=cfg.round_channels)
    if cfg.train:
        from edgecnn.train import TrainConfig, train

        run = point / "train"
        if not (run / "best.pt").is_file():
            # each epoch's line (and the bar within it, on a terminal): minutes per point
            train(TrainConfig(model=cfg.model, data=str(cfg.data), out=str(run), alpha=alpha,
                              resolution=res, epochs=cfg.epochs), force=run.exists(),
                  log=lambda line: log(f"{point.name}: {line}"))
        source = CheckpointSource(str(run / "best.pt"))
    int8 = Int8Spec(str(cfg.data) if cfg.train else "random") \
        if "int8" in cfg.bench.precisions else None
    export(ExportSpec(source, int8=int8, output=str(artifact), dynamic_batch=True, force=True),
           log=lambda line: log(f"{point.name}: export: {line}"))  # each stage, on the ticker
    return artifact


def _row(r: BenchRecord, alpha: float, res: int) -> dict[str, Any]:
    return {"alpha": alpha, "resolution": res, "runtime": r.runtime, "precision": r.precision,
            "params": r.params, "macs": r.macs, "latency_ms_p50": r.latency_ms_p50,
            "latency_ms_p90": r.latency_ms_p90, "latency_ms_p99": r.latency_ms_p99,
            "throughput_ips": r.throughput_ips,
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
    from edgecnn.plotting import save_png

    figures = [("latency_vs_macs.png", latency_macs_figure(rows, title))]
    if any(r["accuracy_top1_pct"] is not None for r in rows):
        figures.append(("accuracy_vs_latency.png", accuracy_latency_figure(rows, title)))
    written = []
    for name, fig in figures:
        written.append(save_png(fig, out / name, tight=False))
    return written


def _series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(f"{r['runtime']} {r['precision']}", []).append(r)
    return series


def latency_macs_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """Log-log, plain-number ticks (50M, 100M; 0.5, 1, 2 ms), each grid point labelled
    alpha/resolution once (the series share their MACs)."""
    import matplotlib.pyplot as plt

    from edgecnn.plotting import log_axis, place_labels
    from edgecnn.tables import human

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    series = _series(rows)
    for label, rs in series.items():
        ax.plot([r["macs"] for r in rs], [r["latency_ms_p50"] for r in rs], "o", label=label,
                alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(0.15)
    log_axis(ax.xaxis, lambda v, _pos: human(int(v)))
    log_axis(ax.yaxis)
    ax.set(xlabel="multiply-adds per image", ylabel="p50 latency, batch 1 (ms)",
           title=f"{title}: latency vs MACs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    first = next(iter(series.values()))  # label the points of one series: alpha/resolution
    place_labels(ax, [(r["macs"], r["latency_ms_p50"]) for r in first],
                 [f"{r['alpha']:g}/{r['resolution']}" for r in first])
    return fig


def accuracy_latency_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """Points and each series' Pareto front in the series' own colour."""
    import matplotlib.pyplot as plt

    from edgecnn.plotting import place_labels

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    labelled = []
    for label, rs in _series(rows).items():
        pts = [(r["latency_ms_p50"], r["accuracy_top1_pct"]) for r in rs
               if r["accuracy_top1_pct"] is not None]
        if not pts:
            continue
        (marks,) = ax.plot(*zip(*pts), "o", label=label, alpha=0.7)
        front = pareto_front(pts)
        ax.plot(*zip(*front), "-", color=marks.get_color(), alpha=0.8)
        labelled += [((r["latency_ms_p50"], r["accuracy_top1_pct"]),
                      f"{r['alpha']:g}/{r['resolution']}") for r in rs
                     if r["accuracy_top1_pct"] is not None]
    ax.margins(0.12)
    ax.set(xlabel="p50 latency, batch 1 (ms)", ylabel="top-1 (%)",
           title=f"{title}: accuracy vs latency (lines: Pareto fronts)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    first = labelled[: len(labelled) // max(1, len(_series(rows)))]
    place_labels(ax, [p for p, _ in first], [t for _, t in first])
    return fig
