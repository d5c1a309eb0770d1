"""Bench's plots: a fleet's latency, devices side by side.

    edgecnn bench exports/mnv1 --remote orin --remote pi5 -o results/fleet.md
    # -> results/fleet.md and results/fleet.devices.png

One group of bars per case (model, runtime, precision, batch), one bar per device in the
group, p50 with a whisker to p90, on a log scale: a Jetson and a Raspberry Pi can be 10x
apart. Matplotlib (Agg) is imported only here, on the workstation that draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def fleet_plot_path(output: Path) -> Path:
    """Where a fleet's plot goes beside bench's -o file: fleet.md -> fleet.devices.png."""
    return output.with_name(output.stem + ".devices.png")


def fleet_cases(records: Sequence[Any]) -> tuple[list[str], list[str], dict]:
    """(cases, devices, {(case, device): (p50, p90)}) of records that carry a `host`."""
    cases: list[str] = []
    devices: list[str] = []
    values: dict[tuple[str, str], tuple[float, float]] = {}
    for r in records:
        case = f"{r.model} {r.runtime} {r.precision} b{r.batch}"
        cases += [case] if case not in cases else []
        devices += [r.host] if r.host not in devices else []
        values[case, r.host] = (r.latency_ms_p50, r.latency_ms_p90)
    return cases, devices, values


def fleet_figure(records: Sequence[Any]) -> tuple[Any, dict[str, Any]]:
    """(figure, what it shows: cases, devices as the legend names them, p50 per device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.plotting import log_axis

    cases, devices, values = fleet_cases(records)
    height = 0.8 / len(devices)
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * len(cases) * len(devices) + 1.6))
    shown: dict[str, list[float | None]] = {}
    for i, dev in enumerate(devices):
        ys, p50, p90 = [], [], []
        for j, case in enumerate(cases):
            if (case, dev) in values:  # a device that failed a case has no bar there
                ys.append(len(cases) - 1 - j + (len(devices) - 1 - i - (len(devices) - 1) / 2)
                          * height)
                p50.append(values[case, dev][0])
                p90.append(values[case, dev][1])
        ax.barh(ys, p50, height=height * 0.9, label=dev)
        ax.errorbar(p50, ys, xerr=[[0] * len(p50), [b - a for a, b in zip(p50, p90)]],
                    fmt="none", ecolor="black", capsize=2, linewidth=0.8)
        for y, a in zip(ys, p50):
            ax.text(a, y, f" {a:.3g}", va="center", fontsize=7)
        shown[dev] = [values.get((c, dev), (None,))[0] for c in cases]
    ax.set_xscale("log")
    log_axis(ax.xaxis)
    lo = min(v[0] for v in values.values())
    hi = max(v[1] for v in values.values())
    ax.set_xlim(lo / 2, hi * 4)  # room for the value labels
    ax.set_yticks(range(len(cases))[::-1], cases, fontsize=8)
    ax.set(xlabel="p50 latency per batch, ms (log scale; whisker to p90)",
           title="latency by device")
    legend = ax.legend(fontsize=8, loc="lower right", title="device")
    fig.tight_layout()
    ticks = {t.get_position()[1]: t.get_text() for t in ax.get_yticklabels()}
    return fig, {"cases": [ticks[y] for y in sorted(ticks, reverse=True)],
                 "devices": [t.get_text() for t in legend.get_texts()],
                 "p50_ms": shown}


def write_fleet_plot(records: Sequence[Any], path: Path) -> dict[str, Any]:
    """Draw the fleet's figure into `path` (PNG, atomically); what it shows, with `path`."""
    from edgecnn.plotting import save_png

    fig, shown = fleet_figure(records)
    save_png(fig, path)
    return {**shown, "path": path}
