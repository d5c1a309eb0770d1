"""`edgecnn bench` as a function: targets in, records and their conditions out."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.machine import conditions, load_and_clock, noisy_reasons
from edgecnn.bench.roofline import Peaks, measure_peaks
from edgecnn.bench.targets import make_cases, resolve_target, skip_reason
from edgecnn.errors import EdgeCNNError
from edgecnn.progress import Bar
from edgecnn.runtime.loader import not_produced
from edgecnn.timing.harness import BenchRecord, EvalData, add_speedups, run_group
from edgecnn.timing.loop import TimingPlan
from edgecnn.timing.stats import NOISE_LIMIT


@dataclass(frozen=True)
class BenchConfig:
    runtimes: tuple[str, ...] = ("onnxruntime",)
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    # Same fixed thread count for every runtime, so that none wins by taking more cores.
    threads: int = os.cpu_count() or 1
    device: str = "cpu"
    plan: TimingPlan = TimingPlan()
    rounds: int = 5  # interleaved rounds per group (see edgecnn/timing/harness.py)
    data: str | None = None  # data set spec for accuracy (held-out split)
    eval_limit: int = 1000  # images used for accuracy
    alpha: float = 1.0  # for zoo names exported on the fly
    resolution: int | None = None  # also: the input size of an ONNX file whose size is dynamic
    # For ONNX files without edgecnn metadata (accuracy on `data`): as edgecnn.runtime.load
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None
    footprint: bool = True  # each ONNX file's footprint in a fresh process (after timing)


def run_bench(targets: Sequence[str], config: BenchConfig, *, workdir: Path | None = None,
              progress: Bar | None = None) -> tuple[list[BenchRecord], dict[str, Any]]:
    """Benchmark every target; returns (records, conditions). Ctrl-C keeps what was done.
    `progress` (an edgecnn.progress.Bar) says each stage and counts its steps."""
    bar = progress or Bar(None, "", show=False)
    cond = conditions(config.threads)
    cond.update(warmup=config.plan.warmup, rounds=config.rounds, buffers=config.plan.buffers,
                iters_desc=(str(config.plan.iters) if config.plan.iters is not None
                            else f"{config.plan.duration_s:g} s of"))
    cond["not_measured"] = [why for r in config.runtimes for p in config.precisions
                            if (why := skip_reason(r, p, config.device))]
    cond["before"] = load_and_clock()
    records: list[BenchRecord] = []
    peaks: Peaks | None = None
    verdicts: dict[str, dict[str, Any]] = {}  # model label -> the export's int8 verdict
    with _interrupt_flag() as stopped, tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name in targets:
            bar.stage(f"bench: loading {name}")
            target = resolve_target(name, alpha=config.alpha, resolution=config.resolution,
                                    precisions=config.precisions, workdir=Path(tmp))
            verdict = (target.info.get("int8") or {}).get("verdict")
            if verdict and verdict.get("written", True):
                verdicts[target.label] = verdict
            precisions = list(config.precisions)
            for p in [p for p in precisions if p not in target.files]:
                why = not_produced(Path(name), p) if Path(name).is_dir() else None
                if why:  # the export decided against the file: a line, not a row
                    cond["not_measured"].append(f"{target.label}: {why}")
                    precisions.remove(p)
            if target.info.get("tuning_note"):
                cond.setdefault("tuning", {})[target.label] = target.info["tuning_note"]
            groups = make_cases(target, runtimes=config.runtimes, precisions=precisions,
                                batches=config.batches, threads=config.threads,
                                device=config.device)
            groups = [g for g in groups if g]  # a precision skipped on every runtime: none
            eval_data = eval_data_for(config, target.input_shape, target.files)
            if eval_data is not None:  # which file and export stage each top-1 belongs to
                from edgecnn.runtime.stage import describe_stage

                cond.setdefault("accuracy_of", {})[target.label] = {
                    "data": f"{config.data} val, first {len(eval_data[1])} images",
                    "files": {p: describe_stage(f) for p, f in target.files.items()
                              if p in precisions}}
            if peaks is None and groups:  # after the first target loads: a wrong path
                bar.stage("bench: measuring the machine's peak")  # fails before this wait
                peaks = measure_peaks(config.threads)
                cond["peak_gmacs"] = peaks.fp32_gmacs
                cond["peaks"] = asdict(peaks)
            # Top-1 is a property of the file in a runtime, not of the batch it is timed at:
            # scored once, in the group of the largest batch (fewest calls), which runs first
            # (a Ctrl-C after it leaves no row without top-1); the rows keep the asked order.
            order = sorted(range(len(groups)), key=lambda i: -groups[i][0].batch)
            measured_by: dict[int, list[BenchRecord]] = {}
            for i in order:
                if stopped():
                    break
                group = groups[i]

                def stage(desc: str, steps: int | None, label: str = target.label) -> None:
                    bar.reset(steps or 0)
                    bar.stage(f"bench {label}: {desc}")

                measured = run_group(group, config.plan, peak_gmacs=cond["peak_gmacs"],
                                     rounds=config.rounds,
                                     eval_data=eval_data if i == order[0] else None,
                                     progress=bar.update, stop=stopped, stage=stage)
                add_roofline(measured, group, peaks, cond)
                if config.footprint and not stopped():
                    add_footprint(measured, group, config.threads)
                measured_by[i] = measured
            measured_here = [r for i in sorted(measured_by) for r in measured_by[i]]
            if share_accuracy(measured_here) and len(groups) > 1:
                cond["accuracy_of"][target.label]["batch"] = groups[order[0]][0].batch
            records += measured_here
            if stopped():
                cond["interrupted"] = True
                break
    cond["after"] = load_and_clock()
    cond["noisy"] = noisy_reasons(
        cond["before"], cond["after"], cond.get("cpu_cores"),
        {f"{r.model} {r.runtime} {r.precision} b{r.batch}": r.noise_pct for r in records
         if r.noise_pct is not None}, 100 * NOISE_LIMIT)
    add_speedups(records, baseline=_is_baseline)
    if verdicts:
        cond["int8_verdicts"] = int8_verdicts(records, verdicts)
    return records, cond


def share_accuracy(records: Sequence[BenchRecord]) -> bool:
    """Each row's top-1 and agreement from the row of the same model, runtime and precision
    that was scored (at another batch size); whether any row was scored."""
    scored = {(r.model, r.runtime, r.precision): r for r in records
              if r.accuracy_top1_pct is not None}
    for r in records:
        src = scored.get((r.model, r.runtime, r.precision))
        if src is not None and r.accuracy_top1_pct is None:
            r.accuracy_top1_pct, r.agreement_top1_pct = (src.accuracy_top1_pct,
                                                         src.agreement_top1_pct)
    return bool(scored)


def add_roofline(records: Sequence[BenchRecord], cases: Sequence[Any], peaks: Peaks,
                 cond: dict[str, Any]) -> None:
    """Each record's per-layer roofline (bench/roofline.py) and its share of the p50 (none
    without the onnx package); the efficiency of int8 records against the int8 peak (none
    where that was not measured); per-kind bounds into `cond`."""
    for r in records:  # an int8 row against the int8 peak, or no eff % at all: never
        if r.precision == "int8":  # against the fp32 peak (the base install has no int8 one)
            r.efficiency_pct = (100 * r.gmacs_per_s / peaks.int8_gmacs
                                if peaks.int8_gmacs and r.gmacs_per_s else None)
    try:
        from edgecnn.bench.roofline import layer_bounds
    except ImportError:
        return
    by_key = {(c.runtime, c.precision, c.batch): c for c in cases}
    for r in records:
        case = by_key.get((r.runtime, r.precision, r.batch))
        if case is None or case.path is None:
            continue
        try:
            bounds = layer_bounds(case.path, peaks, r.batch)
        except ImportError:  # no onnx package: no shapes, no roofline
            return
        r.roofline_ms = bounds["total"]["bound_ms"]
        r.roofline_pct = 100 * r.roofline_ms / r.latency_ms_p50
        cond.setdefault("roofline", {})[f"{r.model} {r.runtime} {r.precision} b{r.batch}"] = {
            k: {"bound_ms": round(v["bound_ms"], 4), "macs": int(v["macs"]),
                "bytes": int(v["bytes"])} for k, v in bounds.items()}


FOOTPRINT_RUNTIMES = ("onnxruntime", "openvino")  # what a CPU device app loads


def add_footprint(records: Sequence[BenchRecord], cases: Sequence[Any], threads: int) -> None:
    """Each ONNX Runtime/OpenVINO record's footprint as a device app sees it (a fresh process
    running edgecnn.runtime alone: timing/footprint.py), measured after the timing so that
    it does not disturb it."""
    from edgecnn.timing.footprint import app_footprint

    by_key = {(c.runtime, c.precision, c.batch): c for c in cases}
    for r in records:
        case = by_key.get((r.runtime, r.precision, r.batch))
        if case is None or case.path is None or r.runtime not in FOOTPRINT_RUNTIMES \
                or r.device != "cpu":
            continue
        try:
            fp = app_footprint(case.path, (r.batch, *case.input_shape), runtime=r.runtime,
                               threads=threads)
        except EdgeCNNError:  # the row's timing stands; its footprint is simply absent
            continue
        r.app_rss_mb_load, r.app_rss_mb_peak = fp["rss_mb_load"], fp["rss_mb_peak"]


def int8_verdicts(records: Sequence[BenchRecord], export: dict[str, dict[str, Any]]
                  ) -> dict[str, dict[str, Any]]:
    """The export's int8 verdict per model, beside the int8 speed-up measured now (fp32 p50 /
    int8 p50, same runtime and batch) where both precisions were benchmarked."""
    out = {}
    for label, verdict in export.items():
        p50 = {(r.runtime, r.batch, r.precision): r.latency_ms_p50 for r in records
               if r.model == label}
        measured = {f"{rt} batch {b}": round(p50[(rt, b, "fp32")] / ms, 3)
                    for (rt, b, prec), ms in p50.items()
                    if prec == "int8" and (rt, b, "fp32") in p50}
        out[label] = {"export": verdict, "measured_speedup": measured}
    return out


def _is_baseline(r: BenchRecord) -> bool:
    """PyTorch eager fp32; where it was not measured, add_speedups falls back to the group's
    first case (the first runtime's first precision: fp32 when it is listed first)."""
    return r.runtime == "torch-eager" and r.precision == "fp32"


def eval_data_for(config: BenchConfig, input_shape: tuple[int, int, int],
               files: dict[str, Path]) -> EvalData | None:
    if not config.data:
        return None
    from edgecnn.data import load_dataset
    from edgecnn.runtime.loader import check_classes, metadata_of, preprocess_for
    from edgecnn.runtime.onnx_file import read_onnx

    path = next(iter(files.values()))
    info = read_onnx(path)
    pre = preprocess_for(info, mean=config.mean, std=config.std, resolution=config.resolution)
    meta = metadata_of(info)
    classes = config.classes or (meta.classes if meta is not None else None)
    check_classes(info, classes)
    out = info.outputs[0].shape if info.outputs else None
    count = len(classes) if classes else (out[1] if out and len(out) > 1 else None)
    ds = load_dataset(config.data, split="val")
    if count is not None and ds.num_classes != count:
        raise EdgeCNNError(f"{config.data} has {ds.num_classes} classes but the model "
                           f"predicts {count}")
    n = min(config.eval_limit, len(ds))
    images = np.stack([pre.image(im) for im in _sources(ds, n)])  # the runtime's steps
    if images.shape[1:] != input_shape:
        raise EdgeCNNError(f"preprocessed images are {images.shape[1:]}, model takes {input_shape}")
    return images.astype(np.float32), ds.labels[:n].astype(np.int64)


def _sources(ds: Any, n: int) -> list[Any]:
    """The first n images as the runtime takes them: image folders' files, else arrays."""
    if ds.files is not None:
        return list(ds.files[:n])
    return [im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0) for im in ds.images[:n]]


@contextlib.contextmanager
def _interrupt_flag() -> Iterator[Callable[[], bool]]:
    """First Ctrl-C: finish the current block and stop cleanly; a second one aborts."""
    state = {"stop": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if state["stop"]:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        state["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, plain KeyboardInterrupt
        yield lambda: False
        return
    try:
        yield lambda: state["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)
