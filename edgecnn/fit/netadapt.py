"""NetAdapt's step (Yang et al. 2018), by measured latency: the most accurate trained
candidate that narrowly misses the budget, structurally pruned until it meets it, then
fine-tuned; it then competes with the rest.

The ratio is searched on measured latency, not MACs: pruned graphs at a spread of ratios are
timed side by side, then the bracket around the budget is refined once; the smallest ratio
that meets the budget (with a margin for the final, independent timing) is exported through
the export's PruneSpec path (prune, fine-tune, the held-out top-1 before and after).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgecnn.fit.latency import FitMeasure, model_graph
from edgecnn.fit.search import Trained

RATIOS = (0.2, 0.35, 0.5, 0.65, 0.8)  # shares of MACs removed, timed side by side first
MARGIN = 0.05  # the pruned model must meet 95% of the budget: its final timing is separate


def prune_toward(source: Trained, budget_ms: float, *, measure: FitMeasure,
                 finetune_epochs: int, out: Path,
                 log: Callable[[str], None] = lambda line: None) -> dict[str, Any] | None:
    """The pruned candidate's row (candidate, top1, latency_ms measured, artifact), or None
    when no ratio up to the largest meets the budget. Saved in out/result.json, and reused
    from there by a rerun."""
    from edgecnn.fileio import atomic_write

    saved = out / "result.json"
    if saved.is_file():
        row = json.loads(saved.read_text(encoding="utf-8"))
        if row is None or Path(row["artifact"], "export.json").is_file():
            log("pruned candidate: done earlier, reused")
            return row
    target = budget_ms * (1 - MARGIN)
    timed = _time_ratios(source, RATIOS, measure, out / "search", log)
    ratio = _smallest_meeting(timed, target)
    # refine once, between the largest ratio that misses (0: unpruned) and the one that meets
    below = max((r for r in timed if r < (ratio or 1.0)), default=0.0)
    if ratio is not None and ratio - below > 0.05:
        timed.update(_time_ratios(source, _between(below, ratio), measure, out / "search", log))
        ratio = _smallest_meeting(timed, target)
    if ratio is None:
        log(f"pruning {source.candidate.key} by up to {max(RATIOS):.0%} of its MACs does not "
            f"meet {budget_ms:g} ms (measured {timed[max(RATIOS)]:.3f} ms): no pruned candidate")
        atomic_write(saved, "null")
        return None
    log(f"pruning {source.candidate.key} by {ratio:.0%} of its MACs: {timed[ratio]:.3f} ms "
        f"measured; fine-tuning {finetune_epochs} epoch(s)")
    row = _export(source, ratio, finetune_epochs, out / "artifact", log)
    row["search_ms"] = {f"{r:g}": round(v, 4) for r, v in sorted(timed.items())}
    atomic_write(saved, json.dumps(row, indent=2))
    return row


def _smallest_meeting(timed: dict[float, float], target: float) -> float | None:
    return min((r for r, ms in timed.items() if ms <= target), default=None)


def _between(low: float, high: float) -> tuple[float, ...]:
    step = (high - low) / 3
    return (round(low + step, 3), round(low + 2 * step, 3))


def _time_ratios(source: Trained, ratios: tuple[float, ...], measure: FitMeasure,
                 scratch: Path, log: Callable[[str], None]) -> dict[float, float]:
    import onnx

    from edgecnn.export.prune import prune
    from edgecnn.export.source import resolve_source
    from edgecnn.export.spec import CheckpointSource, PruneSpec

    src = resolve_source(CheckpointSource(source.checkpoint))
    scratch.mkdir(parents=True, exist_ok=True)
    files = {}
    for ratio in ratios:
        model = copy.deepcopy(src.model)
        prune(model, PruneSpec(ratio), resolution=src.resolution, in_chans=src.in_chans)
        files[f"{ratio:g}"] = scratch / f"prune-{ratio:g}.onnx"
        onnx.save_model(model_graph(model, src.resolution, src.in_chans),
                        str(files[f"{ratio:g}"]))
    log(f"timing {source.candidate.key} pruned by "
        + ", ".join(f"{r:.0%}" for r in ratios) + " of its MACs")
    ms = measure.time(files)
    return {r: ms[f"{r:g}"] for r in ratios}


def _export(source: Trained, ratio: float, finetune_epochs: int, artifact: Path,
            log: Callable[[str], None]) -> dict[str, Any]:
    from edgecnn.export.api import export
    from edgecnn.export.spec import CheckpointSource, ExportSpec, PruneSpec

    result = export(ExportSpec(CheckpointSource(source.checkpoint),
                               prune=PruneSpec(ratio, finetune_epochs=finetune_epochs),
                               output=str(artifact), force=True),
                    log=lambda line: log(f"export: {line}"))
    pruning = result.report["pruning"]
    candidate = replace(source.candidate, prune=round(ratio, 3))
    return {"candidate": candidate.to_dict(), "top1": pruning["top1_after"],
            "top1_before": pruning["top1_before"], "macs": result.report.get("macs"),
            "artifact": str(result.path), "source": source.candidate.key,
            "finetune_epochs": finetune_epochs}
