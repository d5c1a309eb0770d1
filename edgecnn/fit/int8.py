"""int8 candidates of a fit: the grid's int8 latency as measured and predicted on the device
(latency.py: the fit points timed whole in both precisions), and the most accurate trained
networks exported with int8 in the device's recipe (latency.int8_target), then tuned where
fit measures (on the device with --remote): their latency is tune's measurement of the
file it chose, their top-1 the accuracy guard's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.fit.space import NEAR_FACTOR, FitCandidate, candidate_row


@dataclass(frozen=True)
class Int8Latency:
    """The grid's int8 latency on the device (with --precision int8): measured whole on the
    table's fit and held-out points, predicted for the rest (latency.py predict_int8)."""

    target: str | None  # the recipe int8 is exported with for this device; None: no int8
    ms: dict[str, float]  # by the fp32 candidate's key
    source: dict[str, str]  # measured | predicted


INT8_FINALISTS = 3  # int8 exports (calibration, the accuracy guard, tune) are minutes each


def int8_rows(spec: Any, rows: list[dict[str, Any]], out: Path, threads: int,
              measure: Any, int8: Int8Latency, log: Callable[[str], None]
              ) -> list[dict[str, Any]]:
    """The most accurate trained fp32 candidates within twice the budget, exported with int8
    and tuned where fit measures: latency as tune measured the file it chose (no row where
    tune keeps float), top-1 the int8 file's by the accuracy guard (a per-block placement's
    float blocks only drop int8 rounding: tune's record says so)."""
    def int8_ms(r: dict[str, Any]) -> float:  # the grid point's int8 latency
        return int8.ms[FitCandidate(r["family"], r["alpha"], r["resolution"]).key]

    # trained grid points (a pruned one ships in fp32: it has no checkpoint to export)
    pool = sorted((r for r in rows if r["top1"] is not None and r.get("checkpoint")
                   and int8_ms(r) <= NEAR_FACTOR * spec.budget_ms),
                  key=lambda r: -r["top1"])[:INT8_FINALISTS]
    found = []
    for r in pool:
        c = FitCandidate(r["family"], r["alpha"], r["resolution"], r["prune"], "int8")
        artifact = out / "exports" / c.key
        record = int8_export(r, artifact, spec.data, int8.target, threads, measure, log)
        if record is None:
            continue
        found.append(candidate_row(c, record["ms"], "measured", record["top1"],
                                   spec.budget_ms, artifact=str(artifact),
                                   tuned=record["file"], runtime=record["runtime"]))
    return found


def int8_export(row: dict[str, Any], artifact: Path, data: str, target: str, threads: int,
                measure: Any, log: Callable[[str], None]) -> dict[str, Any] | None:
    from edgecnn.export.api import export
    from edgecnn.export.spec import CheckpointSource, ExportSpec, Int8Spec
    from edgecnn.fit.latency import MeasuredHere
    from edgecnn.runtime.tuning import read_tunings

    done = artifact / "export.json"
    if not done.is_file():
        log(f"exporting {row['name']} with int8 for {target} (calibration, the accuracy "
            "guard)")
        export(ExportSpec(CheckpointSource(row["checkpoint"]), int8=Int8Spec(data),
                          target=target, output=str(artifact), force=True),
               log=lambda line: log(f"export: {line}"))
    report = json.loads(done.read_text(encoding="utf-8"))
    if not (artifact / "model.int8.onnx").is_file():
        log(f"{row['name']}: no int8 file ({(report.get('int8') or {}).get('reason')})")
        return None
    if not read_tunings(artifact):  # on the device that measures (a remote one: there)
        tuner = getattr(measure, "tune", None) or MeasuredHere(threads).tune
        tuner(artifact, lambda line: log(f"tune: {line}"))
    record = next(iter(read_tunings(artifact).values()))
    if record["candidate"] == "float":  # as it will run here, it is the fp32 candidate
        log(f"int8 of {row['name']}: tune keeps it in float on the device "
            f"({record['reason']}); no int8 candidate")
        return None
    return {"ms": record["chosen_ms"], "file": record["file"], "runtime": record["runtime"],
            "top1": ((report.get("int8") or {}).get("final") or {}).get("top1_int8")}
