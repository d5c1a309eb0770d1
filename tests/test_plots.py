"""The plots a user opens: rendered from small fixed inputs (shaped like real pipeline and
sweep results), written to disk, and no two texts drawn on top of each other (matplotlib's
own text extents)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edgecnn.plotting import overlaps  # noqa: E402

# PyTorch eager is ~40x the deployed variants; accuracies within 0.3 points: the hard case.
PIPELINE = [
    {"runtime": "torch-eager", "precision": "fp32", "latency_ms_p50": 8.2, "latency_ms_p99": 9.9,
     "accuracy_top1_pct": 98.1},
    {"runtime": "onnxruntime", "precision": "fp32", "latency_ms_p50": 0.21,
     "latency_ms_p99": 0.26, "accuracy_top1_pct": 98.1},
    {"runtime": "onnxruntime", "precision": "int8", "latency_ms_p50": 0.19,
     "latency_ms_p99": 0.31, "accuracy_top1_pct": 97.9},
    {"runtime": "openvino", "precision": "fp32", "latency_ms_p50": 0.23,
     "latency_ms_p99": 0.29, "accuracy_top1_pct": 98.1},
    {"runtime": "openvino", "precision": "int8", "latency_ms_p50": 0.20,
     "latency_ms_p99": 0.24, "accuracy_top1_pct": 97.8},
]


def sweep_rows(trained: bool) -> list[dict]:
    rows = []
    for runtime, speed in (("onnxruntime", 1.0), ("openvino", 1.3)):
        for alpha in (0.25, 0.5, 0.75, 1.0):
            for res in (128, 160, 192, 224):
                macs = int(569e6 * alpha ** 2 * (res / 224) ** 2) + 2_000_000
                rows.append({"runtime": runtime, "precision": "fp32", "alpha": alpha,
                             "resolution": res, "macs": macs,
                             "latency_ms_p50": speed * (0.2 + macs / 1.5e8),
                             "accuracy_top1_pct": (60 + 10 * alpha + res / 40 + speed)
                             if trained else None})
    return rows


def test_pipeline_plots_are_written_and_readable(tmp_path: Path) -> None:
    from edgecnn.pipeline.report import _plots, accuracy_figure, latency_figure

    written = _plots({"records": PIPELINE}, tmp_path)
    assert [p.name for p in written] == ["latency.png", "accuracy_vs_latency.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    for make in (latency_figure, accuracy_figure):
        fig = make(PIPELINE)
        assert overlaps(fig) == [], make.__name__
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"  # sub-ms bars next to an 8 ms one stay visible
        plt.close(fig)


@pytest.mark.parametrize("trained", [False, True])
def test_sweep_plots_are_written_and_readable(tmp_path: Path, trained: bool) -> None:
    from edgecnn.bench.sweep import accuracy_latency_figure, latency_macs_figure, plot_sweep

    rows = sweep_rows(trained)
    written = plot_sweep(rows, tmp_path, title="mobilenet alpha x resolution")
    assert [p.name for p in written] == ["latency_vs_macs.png"] + (
        ["accuracy_vs_latency.png"] if trained else [])
    fig = latency_macs_figure(rows, "mobilenet")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
    assert not any("^" in t or "times" in t for t in ticks), ticks  # no "6x10^0"
    labels = [t.get_text() for t in ax.texts]
    assert "0.25/128" in labels and "1/224" in labels and len(labels) == 16
    assert overlaps(fig) == []
    plt.close(fig)
    if trained:
        fig = accuracy_latency_figure(rows, "mobilenet")
        ax = fig.axes[0]
        marks = [line for line in ax.lines if line.get_linestyle() == "None"]
        fronts = [line for line in ax.lines if line.get_linestyle() == "-"]
        assert [m.get_color() for m in marks] == [f.get_color() for f in fronts]
        legend = {t.get_text(): h.get_color() for t, h in
                  zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
        assert legend == {m.get_label(): m.get_color() for m in marks}
        assert overlaps(fig) == []
        plt.close(fig)
