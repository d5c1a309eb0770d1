"""Which file of an artifact and which stage of the export a figure belongs to.

predict, bench and the app score labelled folders; a figure means something only with the
file it came from and what the export did to the weights first (pruning, fine-tuning, int8).
Read from export.json beside the file: torch-free, and silent when there is no record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _report(model_path: Path) -> dict[str, Any] | None:
    record = Path(model_path).parent / "export.json"
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def describe_stage(model_path: str | Path) -> str:
    """E.g. "model.int8.onnx: pruned 30% (structured), fine-tuned 1 epoch, int8;
    the export measured top-1 54.70% on mnist5k val"."""
    path = Path(model_path)
    report = _report(path)
    if report is None:
        return f"{path.name}: no export.json beside it (stage unknown)"
    steps = []
    pruning = report.get("pruning") or {}
    if pruning:
        steps.append(f"pruned {pruning.get('ratio', 0):.0%} ({pruning.get('method', '?')})")
        epochs = pruning.get("finetune_epochs") or 0
        steps.append(f"fine-tuned {epochs} epoch{'s' if epochs != 1 else ''}" if epochs
                     else "not fine-tuned")
    precision = ((report.get("files") or {}).get(path.name) or {}).get("precision")
    if precision is None:
        precision = "int8" if ".int8." in path.name else "fp16" if ".fp16." in path.name \
            else "fp32"
    stage = ", ".join((steps or ["as trained (not pruned)"]) + [precision])
    top1 = export_top1(report, precision)
    measured = f"; the export measured top-1 {top1:.2f}%" if top1 is not None else ""
    data = (pruning or report).get("accuracy_data") or \
        (report.get("data") or {}).get("calibration")
    if measured and data:
        measured += f" on {data}"
    return f"{path.name}: {stage}{measured}"


def export_top1(report: dict[str, Any], precision: str) -> float | None:
    """The held-out top-1 the export measured for the file of this precision, if it did."""
    int8 = report.get("int8") or {}
    final = int8.get("final") or {}
    if precision == "int8":
        return final.get("top1_int8")
    pruning = report.get("pruning") or {}
    for value in (pruning.get("top1_after"), final.get("top1_fp32"), report.get("top1_fp32")):
        if value is not None:
            return value
    return None
