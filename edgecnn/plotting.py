"""Small matplotlib helpers shared by the plots the project writes (pipeline, sweep): point
labels placed where they collide with nothing, readable log axes, and the overlap check the
tests use. Matplotlib is imported by the callers (Agg backend), never at import time here.

    place_labels(ax, [(x, y), ...], ["0.5/160", ...])   # each label beside its point
    overlaps(fig)                                        # [] when no two texts collide
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Offsets (points) tried in order for a label: right, above, below, left, then further out.
_OFFSETS = [(5, 3), (5, -10), (-5, 6), (-5, -12), (5, 12), (5, -20), (-5, 16), (-5, -24),
            (12, 22), (12, -30), (-12, 28), (-12, -34)]


def place_labels(ax: Any, points: Sequence[tuple[float, float]], texts: Sequence[str],
                 fontsize: float = 7) -> list[Any]:
    """Annotate each point with its text at the first offset that overlaps no text already
    on the figure (tick labels, titles, earlier labels); the last offset when none is free."""
    fig = ax.figure
    fig.canvas.draw()  # lay out ticks and titles, so their extents are known
    renderer = fig.canvas.get_renderer()
    taken = [t.get_window_extent(renderer) for t in _texts(fig)]
    placed = []
    for (x, y), text in zip(points, texts):
        for dx, dy in _OFFSETS:
            ha = "left" if dx >= 0 else "right"
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                                fontsize=fontsize, ha=ha, va="bottom")
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = ax.get_window_extent(renderer).contains(box.x0, box.y0) and \
                ax.get_window_extent(renderer).contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                break
            if (dx, dy) != _OFFSETS[-1]:
                label.remove()
        taken.append(label.get_window_extent(renderer))
        placed.append(label)
    return placed


def log_axis(axis: Any, fmt: Any = None) -> None:
    """A log axis labelled with plain numbers at 1-2-5 steps and no minor-tick labels (no
    '6x10^0' or colliding minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(fmt or (lambda v, _pos: f"{v:g}")))
    axis.set_minor_formatter(NullFormatter())


def overlaps(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts of `fig` whose drawn boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.overlaps(box_b)]


def _texts(fig: Any) -> list[Any]:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.figure is not None
            and _on_canvas(t)]


def _on_canvas(text: Any) -> bool:
    """Tick labels outside the axis limits exist but are not drawn: leave them out."""
    axes = text.axes
    if axes is None:
        return True
    try:
        x, y = text.get_position()
        for axis, v in ((axes.xaxis, x), (axes.yaxis, y)):
            if text in axis.get_ticklabels(which="both"):
                lo, hi = sorted(axis.get_view_interval())
                if not lo <= v <= hi:
                    return False
                if not text.get_visible():
                    return False
    except (TypeError, ValueError):
        return True
    return True


def save_png(fig: Any, path: Any, *, dpi: int = 120, tight: bool = True) -> Any:
    """Render `fig` to PNG in memory, then write it atomically (fileio) and close it: a
    killed run leaves the old plot or the new one, never half of one."""
    import io

    import matplotlib.pyplot as plt

    from edgecnn.fileio import atomic_write

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return atomic_write(path, buffer.getvalue())
