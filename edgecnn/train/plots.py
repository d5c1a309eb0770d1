"""Pictures of a run and of a trained network (matplotlib, Agg: no display needed).

- plot_curves: loss and accuracy per epoch, train vs validation (curves.png)
- plot_confusion: the confusion matrix, rows = true class, normalized per row
- plot_filters: the first convolution's filters (what the network looks for)
- plot_feature_maps: the first layers' activations on one image (what it sees)

Every file is drawn in memory and written atomically (edgecnn.fileio).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgecnn.plotting import save_png


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6, 4)):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False)


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    return save_png(fig, path, dpi=110)


def plot_curves(history: list[dict[str, float]], path: Path, *, title: str = "") -> Path:
    """Two panels: cross-entropy and top-1 accuracy per epoch, train vs validation."""
    fig, axes = _figure(1, 2, (10, 3.8))
    epochs = [row["epoch"] for row in history]
    loss_ax, acc_ax = axes[0]
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train")
    acc_ax.plot(epochs, [100 * r["val_acc"] for r in history], "s-", label="validation")
    best = max(history, key=lambda r: r["val_acc"])
    acc_ax.annotate(f"{100 * best['val_acc']:.2f}%", (best["epoch"], 100 * best["val_acc"]),
                    textcoords="offset points", xytext=(0, -14), ha="center")
    acc_ax.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(epochs) <= 10:  # few epochs: one tick each (one epoch alone gave 0.945..1.050)
            ax.set_xticks(epochs)
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, *,
                   title: str = "") -> Path:
    """matrix[i, j] = images of true class i predicted as j; cells show row percentages."""
    k = len(classes)
    side = min(max(4.0, 0.45 * k + 2), 16.0)
    fig, axes = _figure(1, 1, (side + 1, side))
    ax = axes[0][0]
    totals = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    if k <= 30:  # beyond that, tick labels and counts are unreadable anyway
        ax.set_xticks(range(k), classes, rotation=90 if k > 10 else 0)
        ax.set_yticks(range(k), classes)
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    return _save(fig, path)


def plot_filters(weight: np.ndarray, path: Path, *, title: str = "") -> Path:
    """First-layer filters (O, I, kh, kw): RGB when I == 3, otherwise the channel mean."""
    out = weight.shape[0]
    cols = min(out, 8)
    rows = math.ceil(out / cols)
    fig, axes = _figure(rows, cols, (1.3 * cols, 1.3 * rows + 0.4))
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= out:
            continue
        w = weight[index]
        if w.shape[0] == 3:
            lo, hi = w.min(), w.max()
            ax.imshow(((w - lo) / (hi - lo + 1e-12)).transpose(1, 2, 0), interpolation="nearest")
        else:
            ax.imshow(w.mean(0), cmap="gray", interpolation="nearest")
    fig.suptitle(title or f"first convolution: {out} filters {weight.shape[2]}x{weight.shape[3]}")
    return _save(fig, path)


def plot_feature_maps(image: np.ndarray, maps: list[tuple[str, np.ndarray]], path: Path, *,
                      per_layer: int = 8, title: str = "") -> Path:
    """One input (C, H, W, normalized) and up to `per_layer` channels of each (C, h, w) map."""
    rows = 1 + len(maps)
    fig, axes = _figure(rows, per_layer, (1.4 * per_layer, 1.5 * rows + 0.4))
    for ax in axes.flat:
        ax.axis("off")
    picture = image.mean(0) if image.shape[0] != 3 else image.transpose(1, 2, 0)
    lo, hi = picture.min(), picture.max()
    axes[0][0].imshow((picture - lo) / (hi - lo + 1e-12), cmap="gray", interpolation="nearest")
    axes[0][0].set_title("input", fontsize=8)
    for row, (name, fmap) in enumerate(maps, start=1):
        # The most active channels: the ones that respond to this image.
        strongest = np.argsort(-np.abs(fmap).mean((1, 2)))[:per_layer]
        for col, channel in enumerate(strongest):
            ax = axes[row][col]
            ax.imshow(fmap[channel], cmap="viridis", interpolation="nearest")
            ax.set_title(f"{name}[{channel}]" if col == 0 else f"[{channel}]", fontsize=7)
    fig.suptitle(title or "feature maps")
    return _save(fig, path)
