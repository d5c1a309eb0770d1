"""Folders of images as users have them: class folders below a directory (an image folder's
val/ or test/), scored per class when their names are the model's classes.

Shared by `edgecnn predict` and the device app (edgecnn.app); torch-free.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm"}


def labelled_images(paths: list[str]) -> list[tuple[Path, str | None]]:
    """(image, the first folder under the given directory, or None) in order."""
    out: list[tuple[Path, str | None]] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in
                                       p.relative_to(path).parts))
            out.extend((p, p.relative_to(path).parts[0] if len(p.relative_to(path).parts) > 1
                        else None) for p in found)
        else:
            out.append((path, None))
    return out


def score(results: list[tuple[Path, object]], folders: dict[Path, str | None],
          classes: tuple[str, ...] | list[str] | None) -> dict | None:
    """Per-class and overall top-1 when every scored image sits in a folder named after one
    of the model's classes; None otherwise (plain images are not a labelled set)."""
    if not classes:
        return None
    known = set(classes)
    rows = [(folders.get(image), pred) for image, pred in results if not isinstance(pred, str)]
    if not rows or any(label not in known for label, _ in rows):
        return None
    per: dict[str, list[int]] = {}
    for label, pred in rows:
        hits = per.setdefault(label, [0, 0])
        hits[0] += int(pred.labels[0] == label)
        hits[1] += 1
    correct = sum(h for h, _ in per.values())
    return {"top1": 100.0 * correct / len(rows), "correct": correct, "images": len(rows),
            "per_class": {k: {"top1": 100.0 * h / n, "correct": h, "images": n}
                          for k, (h, n) in sorted(per.items())}}


def print_score(scored: dict, stage: str) -> None:
    """The labelled folder's figure with the file and the export stage it belongs to."""
    print(f"top-1 {scored['top1']:.2f}% ({scored['correct']}/{scored['images']}) for {stage}")
    for name, c in scored["per_class"].items():
        print(f"  {name:<20} {c['top1']:7.2f}%  ({c['correct']}/{c['images']})")
