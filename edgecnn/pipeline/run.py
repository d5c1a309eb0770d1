"""The stages of `edgecnn pipeline`, in the order they run.

Run directory layout:
    train/      edgecnn train output (best.pt, last.pt, metrics, curves.png)
    artifact/   edgecnn export output (model.onnx, model.int8.onnx, export.json)
    bench.json  the benchmark records (every variant, measured interleaved)
    report.md   summary table, plots, what every stage did
    .stages/    one stamp per stage: the hash of its settings and inputs
A stage is skipped when its stamp matches and its outputs exist. Training writes a "started"
stamp first, so a killed run resumes from last.pt instead of starting over; export and bench
write their outputs atomically, so a kill leaves the old output or none.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.checkpoint import file_sha256
from edgecnn.fileio import atomic_write
from edgecnn.pipeline.recipe import Recipe

Log = Callable[[str], None]


@dataclass
class Stamps:
    """Per-stage records of what inputs produced the outputs now on disk."""

    root: Path

    def key(self, *parts: Any) -> str:
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def read(self, stage: str) -> dict[str, Any]:
        path = self.root / f"{stage}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write(self, stage: str, **record: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / f"{stage}.json", json.dumps(record, indent=2))

    def done(self, stage: str, key: str, *outputs: Path) -> bool:
        rec = self.read(stage)
        return rec.get("done") == key and all(p.exists() for p in outputs)


def run_pipeline(recipe: Recipe, out: Path, log: Log = print) -> dict[str, Any]:
    """Run (or resume) every stage; returns the summary (also written to report.md)."""
    out.mkdir(parents=True, exist_ok=True)
    stamps = Stamps(out / ".stages")
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ckpt = train_stage(recipe, out / "train", stamps, log)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    artifact = export_stage(recipe, ckpt, out / "artifact", stamps, log)
    timings["export"] = time.perf_counter() - t
    t = time.perf_counter()
    bench = bench_stage(recipe, ckpt, artifact, out / "bench.json", stamps, log)
    timings["bench"] = time.perf_counter() - t
    from edgecnn.pipeline.report import write_report

    return write_report(recipe, out, bench, artifact, timings)


def train_stage(recipe: Recipe, run: Path, stamps: Stamps, log: Log) -> Path:
    from edgecnn.train import TrainConfig, train

    best = run / "best.pt"
    key = stamps.key(recipe.section("train"))
    if stamps.done("train", key, best):
        log(f"train: up to date ({best})")
        return best
    started = stamps.read("train").get("started") == key
    resume = started and (run / "last.pt").is_file()
    log(f"train: {'resuming' if resume else 'training'} {recipe.model} alpha {recipe.alpha:g} "
        f"at {recipe.resolution} px on {recipe.data}, {recipe.train.epochs} epochs")
    stamps.write("train", started=key)
    t = recipe.train
    train(TrainConfig(model=recipe.model, data=recipe.data, out=str(run), alpha=recipe.alpha,
                      resolution=recipe.resolution, epochs=t.epochs, batch_size=t.batch_size,
                      optimizer=t.optimizer, lr=t.lr, seed=t.seed),
          resume=resume, force=not resume and run.exists(),
          log=lambda line: log(f"train: {line}"))  # an epoch a line: minutes, not silence
    stamps.write("train", started=key, done=key)
    return best


def export_stage(recipe: Recipe, ckpt: Path, artifact: Path, stamps: Stamps, log: Log) -> Path:
    from edgecnn.export.api import export

    key = stamps.key(recipe.section("export"), recipe.section("prune"), file_sha256(ckpt))
    if stamps.done("export", key, artifact / "export.json"):
        log(f"export: up to date ({artifact})")
        return artifact
    spec = recipe.export_spec(ckpt, artifact)  # checked when the recipe was read
    p = spec.prune
    log(f"export: {'prune ' + format(p.ratio, 'g') + ' ' + p.method + ', ' if p else ''}"
        f"fp32{' + int8' if spec.int8 else ''}{' + fp16' if spec.fp16 else ''} for "
        f"{spec.target}")
    export(spec, log=lambda line: log(f"  {line}"))
    stamps.write("export", done=key)
    return artifact


def bench_stage(recipe: Recipe, ckpt: Path, artifact: Path, out: Path, stamps: Stamps,
                log: Log) -> dict[str, Any]:
    """`edgecnn bench` on the artifact (run_bench: one interleaved group, held-out accuracy,
    the per-layer roofline); PyTorch eager runs the trained checkpoint, before pruning."""
    import os

    from edgecnn.bench.report import render
    from edgecnn.bench.run import BenchConfig, run_bench
    from edgecnn.runtime.loader import PRECISION_FILES
    from edgecnn.timing.loop import TimingPlan

    onnx_files = sorted(artifact.glob("*.onnx"))
    key = stamps.key(recipe.section("bench"), file_sha256(ckpt),
                     *(file_sha256(f) for f in onnx_files))
    if stamps.done("bench", key, out):
        log(f"bench: up to date ({out})")
        return json.loads(out.read_text(encoding="utf-8"))
    b = recipe.bench
    precisions = tuple(p for p in ("fp32", "int8") if (artifact / PRECISION_FILES[p]).is_file())
    config = BenchConfig(runtimes=b.runtimes, precisions=precisions, batches=(b.batch,),
                         threads=b.threads or os.cpu_count() or 1,
                         plan=TimingPlan(iters=b.iters), data=recipe.data)
    log(f"bench: {', '.join(b.runtimes)} x {', '.join(precisions)}, batch {b.batch}, "
        f"{b.iters} calls each, interleaved; accuracy on up to {config.eval_limit} held-out "
        f"{recipe.data} images")
    records, cond = run_bench([str(artifact)], config)
    if cond.get("interrupted"):  # nothing written: the next run measures again
        raise KeyboardInterrupt
    text = render(records, "json", cond)  # what `edgecnn bench --format json` writes
    atomic_write(out, text)
    stamps.write("bench", done=key)
    return json.loads(text)
