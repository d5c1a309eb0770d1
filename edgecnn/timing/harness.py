"""Measure a group of compared cases honestly, and turn samples into records.

A group is what one table compares: the same model at one batch size, across runtimes and
precisions. All its runners are loaded first (cold start measured for each), then timed in
rounds: every round gives each runner one block of calls in turn. Blocks, not single calls,
because ONNX Runtime's worker threads spin after a run and would steal the next runner's
cores (a pause after such a runner's block, until the process is idle or at most
TimingPlan.settle_s, lets them park: Runner.spins_after_run); rounds, so that a machine
that drifts (thermal, a neighbour) drifts for every side.
Ctrl-C stops the loop; what was measured so far is still summarized.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.runtime.base import Runner
from edgecnn.timing.loop import TimingPlan, make_inputs, time_block, warm_up
from edgecnn.timing.memory import rss_mb_now, rss_mb_peak
from edgecnn.timing.stats import LatencyStats, noise_band


@dataclass
class BenchCase:
    """One (model, runtime, precision, batch) to measure."""

    model: str  # label: "mobilenet-a0.5-r224"
    runtime: str  # onnxruntime | openvino | tensorrt | torch (torch: "torch-eager", ...)
    precision: str  # fp32 | fp16 | int8
    batch: int
    make_runner: Callable[[], Runner] = field(repr=False)
    input_shape: tuple[int, int, int] = (3, 224, 224)  # (C, H, W)
    macs: int | None = None  # per image, conv + linear
    params: int | None = None
    file_bytes: int | None = None
    sync: Callable[[], None] | None = field(default=None, repr=False)  # CUDA synchronize
    gpu_memory_mb: Callable[[], float | None] | None = field(default=None, repr=False)
    path: Path | None = None  # the ONNX file (for its per-layer roofline)


@dataclass
class BenchRecord:
    """One result row. Units are in the field names; None = not measured."""

    model: str
    runtime: str
    precision: str
    batch: int
    device: str
    iters: int
    latency_ms_mean: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_std: float
    throughput_ips: float
    load_ms: float  # building the session / compiling the engine
    first_infer_ms: float  # the first call, with its one-off allocations
    cold_start_ms: float  # load + first call: what an app waits for at start-up
    rss_mb_peak: float  # peak resident memory of the measuring process so far
    rss_mb_load: float  # resident memory added by loading this runner and its first call
    gpu_memory_mb: float | None
    params: int | None
    macs: int | None  # per image
    file_size_mb: float | None
    gmacs_per_s: float | None  # achieved multiply-adds per second at the mean latency
    efficiency_pct: float | None  # gmacs_per_s over the measured peak of its precision
    accuracy_top1_pct: float | None = None
    agreement_top1_pct: float | None = None  # top-1 agreement with the fp32 of this runtime
    speedup_vs_baseline: float | None = None  # baseline p50 / this p50, same group
    baseline: str | None = None
    roofline_ms: float | None = None  # sum over layers of max(MACs/peak, bytes/bandwidth)
    roofline_pct: float | None = None  # roofline_ms / p50: how close to the machine's limit
    host: str | None = None  # the --remote destination that measured it; None: this machine
    noise_pct: float | None = None  # timing/stats.py noise_band, in percent
    # model footprint as a device app sees it (fresh process: edgecnn.timing.memory)
    app_rss_mb_load: float | None = None  # resident memory added by load() + first call
    app_rss_mb_peak: float | None = None  # peak resident memory of that process

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Live:
    case: BenchCase
    runner: Runner
    inputs: list[np.ndarray]
    load_ms: float
    first_ms: float
    rss_load: float
    samples: list[float] = field(default_factory=list)


EvalData = tuple[np.ndarray, np.ndarray]  # preprocessed images (N, C, H, W) f32, labels (N,)


def run_group(cases: Sequence[BenchCase], plan: TimingPlan, *, peak_gmacs: float | None,
              rounds: int = 5, eval_data: EvalData | None = None,
              progress: Callable[[int], None] | None = None,
              stop: Callable[[], bool] | None = None,
              stage: Callable[[str, int | None], None] | None = None) -> list[BenchRecord]:
    """Load, warm up and time every case in interleaved rounds; one record per case.

    With `eval_data`, each runner also classifies it after timing: top-1 accuracy, and top-1
    agreement with the fp32 case of the same runtime (else the first fp32 case).
    `stage(description, steps)` is told when each stage starts (loading, warm-up, timing,
    each case's accuracy pass) and `progress(n)` counts its steps (cases, calls, batches).
    """
    live: list[_Live] = []
    predictions: dict[int, np.ndarray] = {}
    tell = stage or (lambda desc, steps: None)
    # Steps outside the timing are counted only for a caller that is told the stages
    # (a bar sized for the timed calls alone must not overrun).
    step = progress if stage is not None else None
    try:
        tell("loading", len(cases))
        for case in cases:
            live.append(_activate(case, plan))
            if step:
                step(1)
        tell("warm-up", len(live))
        for lv in live:
            warm_up(lv.runner.infer, lv.inputs, plan.warmup, lv.case.sync)
            if step:
                step(1)
        tell("timing", len(live) * plan.iters if plan.iters is not None else len(live) * rounds)
        _timed_rounds(live, plan, rounds, progress, stop)
        if eval_data is not None:
            for lv in live:
                if stop and stop():
                    break
                tell(f"accuracy {lv.case.runtime} {lv.case.precision} b{lv.case.batch}",
                     -(-len(eval_data[0]) // lv.case.batch))
                predictions[id(lv)] = top1(lv.runner, eval_data[0], lv.case.batch, step)
    except KeyboardInterrupt:
        pass  # keep what was measured; the caller writes it
    finally:
        for lv in live:
            lv.runner.deactivate()
    records = []
    for lv in live:
        if not lv.samples:
            continue
        record = _record(lv, peak_gmacs)
        if id(lv) in predictions and eval_data is not None:
            preds = predictions[id(lv)]
            record.accuracy_top1_pct = 100 * float((preds == eval_data[1]).mean())
            ref = _fp32_reference(lv, live, predictions)
            if ref is not None:
                record.agreement_top1_pct = 100 * float((preds == ref).mean())
        records.append(record)
    return records


def top1(runner: Runner, images: np.ndarray, batch: int,
         progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Top-1 class of every image, in chunks of the case's batch size (last one padded);
    `progress(1)` after each chunk."""
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        n = len(chunk)
        if n < batch:  # a static-batch model takes exactly `batch`: pad with copies
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        scores = np.asarray(runner.infer(np.ascontiguousarray(chunk)))
        out.append(scores.reshape(len(chunk), -1).argmax(1)[:n])  # (B, C) or Caffe's (B, C, 1, 1)
        if progress:
            progress(1)
    return np.concatenate(out)


def _fp32_reference(lv: _Live, live: list[_Live],
                    predictions: dict[int, np.ndarray]) -> np.ndarray | None:
    fp32 = [o for o in live if o.case.precision == "fp32" and id(o) in predictions]
    same = [o for o in fp32 if o.case.runtime == lv.case.runtime]
    ref = (same or fp32 or [None])[0]
    return predictions[id(ref)] if ref is not None else None


def _activate(case: BenchCase, plan: TimingPlan) -> _Live:
    inputs = make_inputs((case.batch, *case.input_shape), plan.buffers)
    rss0 = rss_mb_now()
    t0 = time.perf_counter()
    runner = case.make_runner()
    runner.activate()
    t1 = time.perf_counter()
    runner.infer(inputs[0])
    if case.sync:
        case.sync()
    t2 = time.perf_counter()
    return _Live(case, runner, inputs, (t1 - t0) * 1e3, (t2 - t1) * 1e3, rss_mb_now() - rss0)


def wait_until_idle(limit_s: float, step_s: float = 0.01) -> float:
    """Sleep until this process is idle, at most `limit_s`; the seconds waited. Idle: under a
    fifth of a core of CPU time over `step_s`, and (where /proc tells) no other thread of
    the process running or runnable, so that a spinning worker the scheduler has paused on a
    busy machine is not taken for a parked one. Measured (2-vCPU AMD EPYC, ONNX Runtime 1.31,
    2 threads, after 20 runs): one core busy for 45-60 ms, then none; CPU time is charged in
    4 ms ticks there, hence 10 ms steps."""
    if limit_s <= 0:
        return 0.0
    start = time.perf_counter()
    cpu = time.process_time()
    while True:
        time.sleep(step_s)
        now, waited = time.process_time(), time.perf_counter() - start
        if (now - cpu < 0.2 * step_s and not _other_thread_runnable()) or waited >= limit_s:
            return waited
        cpu = now


def _other_thread_runnable() -> bool:
    """Whether a thread of this process other than the caller is running or waiting for a
    core (state R in /proc/self/task/*/stat); False where /proc is not there."""
    me = str(threading.get_native_id())
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for tid in tasks:
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        if stat[stat.rindex(")") + 2:].startswith("R"):
            return True
    return False


def _timed_rounds(live: list[_Live], plan: TimingPlan, rounds: int,
                  progress: Callable[[int], None] | None, stop: Callable[[], bool] | None) -> None:
    if not live:
        return
    last = [live[-1]]  # whose block (or first call, after loading) ran last

    def settle(lv: _Live) -> None:  # the previous runner's spinning threads go idle first
        if len(live) > 1:
            if last[0].runner.spins_after_run:
                wait_until_idle(plan.settle_s)
            warm_up(lv.runner.infer, lv.inputs, plan.block_warmup, lv.case.sync)
        last[0] = lv

    def order(round_: int) -> list[_Live]:
        # Each round starts one case later, so that every case follows every other equally
        # often: a block right after OpenVINO's, or after the first load, ran up to 9%
        # slower than the same file's block later in the round (AMD EPYC, 2 cores).
        k = round_ % len(live)
        return live[k:] + live[:k]

    if plan.iters is not None:
        per_block = {id(lv): max(1, -(-plan.iters // rounds)) for lv in live}  # ceil
        budget = {id(lv): plan.iters for lv in live}  # at least `iters` calls each
        round_ = 0
        while any(budget[id(lv)] > 0 for lv in live):
            round_ += 1
            for lv in order(round_ - 1):
                n = min(per_block[id(lv)], budget[id(lv)])
                if n <= 0:
                    continue
                settle(lv)
                block = time_block(lv.runner.infer, lv.inputs, n, lv.case.sync,
                                   start=len(lv.samples))
                lv.samples += block
                budget[id(lv)] -= n
                spent = sum(block)
                if round_ == 1 and spent < plan.min_block_s:  # too short to time steadily
                    # (progress then counts more calls than the `iters` it was told)
                    longer = math.ceil(plan.min_block_s / max(spent / n, 1e-7))
                    per_block[id(lv)] = longer
                    budget[id(lv)] = max(budget[id(lv)], longer * (rounds - 1))
                if progress:
                    progress(n)
                if stop and stop():
                    return
    else:
        block_s = (plan.duration_s or 1.0) / rounds
        for round_ in range(rounds):
            for lv in order(round_):
                settle(lv)
                t_end = time.perf_counter() + block_s
                while time.perf_counter() < t_end:
                    lv.samples += time_block(lv.runner.infer, lv.inputs, 1, lv.case.sync,
                                             start=len(lv.samples))
                if progress:
                    progress(1)
                if stop and stop():
                    return


def _record(lv: _Live, peak_gmacs: float | None) -> BenchRecord:
    case = lv.case
    stats = LatencyStats.from_seconds(lv.samples)
    # From the p50, like roofline_pct: eff % and roof % of a row describe the same latency.
    achieved = (case.macs * case.batch / (stats.latency_ms_p50 / 1e3) / 1e9
                if case.macs else None)
    return BenchRecord(
        model=case.model, runtime=case.runtime, precision=case.precision, batch=case.batch,
        device=lv.runner.device, **stats.to_dict(),
        throughput_ips=stats.throughput_ips(case.batch),
        load_ms=lv.load_ms, first_infer_ms=lv.first_ms, cold_start_ms=lv.load_ms + lv.first_ms,
        rss_mb_peak=rss_mb_peak(), rss_mb_load=lv.rss_load,
        gpu_memory_mb=case.gpu_memory_mb() if case.gpu_memory_mb else None,
        params=case.params, macs=case.macs,
        file_size_mb=case.file_bytes / 1e6 if case.file_bytes else None,  # MB = 10^6 B
        gmacs_per_s=achieved,
        efficiency_pct=100 * achieved / peak_gmacs if achieved and peak_gmacs else None,
        noise_pct=None if (band := noise_band(lv.samples)) is None else 100 * band,
    )


def add_speedups(records: list[BenchRecord], baseline: Callable[[BenchRecord], bool]) -> None:
    """Fill speedup_vs_baseline: baseline p50 / p50, within each (model, batch) group."""
    groups: dict[tuple[str, int], list[BenchRecord]] = {}
    for r in records:
        groups.setdefault((r.model, r.batch), []).append(r)
    for group in groups.values():
        base = next((r for r in group if baseline(r)), group[0])
        for r in group:
            r.speedup_vs_baseline = base.latency_ms_p50 / r.latency_ms_p50
            r.baseline = f"{base.runtime} {base.precision}"
