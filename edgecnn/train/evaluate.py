"""`edgecnn eval`: a checkpoint on a data set's held-out split, with pictures.

    report = evaluate_checkpoint("runs/lenet5/best.pt", "mnist5k")
    report["top1"], report["per_class"]["7"], report["files"]["confusion"]

Writes, next to the checkpoint (or into `out`), prefixed with the checkpoint's name and the
data set: the confusion matrix, the first convolution's filters, a sample's feature maps
and the report as JSON. They are derived files: evaluating again rewrites them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
from edgecnn.data import load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_write
from edgecnn.train.engine import make_transform, pick_device, predict

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Tanh, nn.Hardswish, nn.SiLU, nn.GELU, nn.Hardtanh)
FEATURE_LAYERS = 3  # activations shown in the feature-map picture


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str,
    *,
    out: str | Path | None = None,
    split: str = "val",
    batch_size: int = 256,
    device: str = "auto",
    pictures: bool = True,
) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and confusion matrix; pictures unless told not."""
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state, source=str(checkpoint))
    dataset = load_dataset(data, split=split)
    classes = [str(c) for c in state["classes"]]
    if classes != list(dataset.classes):
        raise EdgeCNNError(f"{checkpoint} predicts classes {_short(classes)}, data set "
                           f"{dataset.name} has {_short(dataset.classes)}")
    dev = pick_device(device)
    model.to(dev)
    transform = make_transform(dataset, resolution=int(state["resolution"]),
                               in_chans=int(state["model"]["in_chans"]), train=False,
                               mean=tuple(state["mean"]), std=tuple(state["std"]))
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    loss_sum, top5, top1 = 0.0, 0, []
    for logits, labels in predict(model, dataset, transform, batch_size=batch_size, device=dev):
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        top5 += (logits.topk(min(5, k), 1).indices == labels[:, None]).any(1).sum().item()
        top1.append(logits.argmax(1).numpy())
        np.add.at(confusion, (labels.numpy(), top1[-1]), 1)
    predicted = np.concatenate(top1)
    names = [str(f) for f in dataset.files] if dataset.files is not None else \
        [f"#{i}" for i in range(len(dataset))]
    n = int(confusion.sum())
    per_class = {name: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum()
                        else None) for i, name in enumerate(classes)}
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint), "model": state["model"]["name"],
        "alpha": state["model"].get("alpha", 1.0), "resolution": int(state["resolution"]),
        "dataset": dataset.name, "split": split, "images": n,
        "top1": float(np.trace(confusion) / n), "top5": top5 / n, "loss": loss_sum / n,
        "per_class": per_class, "confusion": confusion.tolist(), "files": {},
        # each image's top-1 (file paths for image folders, #index otherwise): what a device
        # app running the exported model on the same files must print
        "per_image": [{"image": name, "label": classes[int(y)], "top1": classes[int(p)]}
                      for name, y, p in zip(names, dataset.labels, predicted)],
    }
    if pictures:
        folder = Path(out) if out is not None else checkpoint.parent
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"{checkpoint.stem}_{_slug(dataset.name)}_"
        report["files"] = _pictures(model, state, dataset, transform, confusion, classes,
                                    folder, prefix, dev)
        report["files"]["report"] = str(folder / f"{prefix}eval.json")
        atomic_write(folder / f"{prefix}eval.json",
                     (json.dumps(report, indent=2) + "\n").encode())
    return report


def _pictures(model: nn.Module, state: dict[str, Any], dataset, transform,  # noqa: ANN001
              confusion: np.ndarray, classes: list[str], folder: Path, prefix: str,
              device: torch.device) -> dict[str, str]:
    from edgecnn.train.plots import plot_confusion, plot_feature_maps, plot_filters

    name = state["model"]["name"]
    files = {"confusion": plot_confusion(
        confusion, classes, folder / f"{prefix}confusion.png",
        title=f"{name} on {dataset.name} ({100 * np.trace(confusion) / confusion.sum():.2f}%)")}
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None:
        files["filters"] = plot_filters(first.weight.detach().float().cpu().numpy(),
                                        folder / f"{prefix}filters.png")
    from edgecnn.data import eval_view
    from edgecnn.data.transforms import normalize

    pixels = eval_view(dataset, transform.config.resolution, transform.config.in_chans).images
    image = normalize(torch.from_numpy(pixels[:1]).to(device), transform.mean,
                      transform.std)  # (1, C, R, R), what predict fed the model
    maps = feature_maps(model, image)
    label = classes[int(dataset.labels[0])]
    files["features"] = plot_feature_maps(
        image[0].cpu().numpy(), maps, folder / f"{prefix}features.png",
        title=f"{name}: feature maps of a '{label}' from {dataset.name}")
    return {key: str(path) for key, path in files.items()}


def feature_maps(model: nn.Module, image: torch.Tensor) -> list[tuple[str, np.ndarray]]:
    """Outputs (C, h, w) of the first FEATURE_LAYERS activation layers (of the first convs
    in a model without such layers) for one image (1, C, H, W)."""
    names = {m: n for n, m in model.named_modules()}
    layers = [m for m in model.modules() if isinstance(m, ACTIVATIONS)] or \
        [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    captured: list[tuple[str, np.ndarray]] = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        # The same ReLU module may run several times: keep the first FEATURE_LAYERS calls with
        # a picture to show (a 1x1 map after global pooling is just a number).
        if output.dim() == 4 and min(output.shape[-2:]) >= 3 and len(captured) < FEATURE_LAYERS:
            captured.append((names[module] or "input", output[0].detach().float().cpu().numpy()))

    handles = [m.register_forward_hook(hook) for m in dict.fromkeys(layers)]
    try:
        with torch.inference_mode():
            model.eval()(image)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def _slug(dataset: str) -> str:
    """'imagefolder:/data/pets' -> 'imagefolder-pets': a file-name-safe data set tag."""
    kind, _, path = dataset.partition(":")
    tail = Path(path).name if path else ""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{kind}-{tail}" if tail else kind)


def _short(names: list[str]) -> str:
    return str(list(names[:5]))[:-1] + (", ...]" if len(names) > 5 else "]")
