"""`edgecnn bench` as a function: targets in, records and their conditions out."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.harness import BenchRecord, EvalData, add_speedups, run_group
from edgecnn.bench.machine import conditions, peak_gmacs
from edgecnn.bench.targets import make_cases, resolve_target
from edgecnn.bench.timing import TimingPlan
from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class BenchConfig:
    runtimes: tuple[str, ...] = ("onnxruntime",)
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    # Same fixed thread count for every runtime, so that none wins by taking more cores.
    threads: int = os.cpu_count() or 1
    device: str = "cpu"
    plan: TimingPlan = TimingPlan()
    rounds: int = 5  # interleaved rounds per group (see harness.py)
    data: str | None = None  # data set spec for accuracy (held-out split)
    eval_limit: int = 1000  # images used for accuracy
    alpha: float = 1.0  # for zoo names exported on the fly
    resolution: int | None = None  # also: the input size of an ONNX file whose size is dynamic
    # For ONNX files without edgecnn metadata (accuracy on `data`): as edgecnn.runtime.load
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | None = None


def run_bench(targets: Sequence[str], config: BenchConfig, *, workdir: Path | None = None,
              progress: Callable[[int, int], None] | None = None
              ) -> tuple[list[BenchRecord], dict[str, Any]]:
    """Benchmark every target; returns (records, conditions). Ctrl-C keeps what was done."""
    cond = conditions(config.threads)
    cond["peak_gmacs"] = peak_gmacs(config.threads)
    cond.update(warmup=config.plan.warmup, rounds=config.rounds, buffers=config.plan.buffers,
                iters_desc=(str(config.plan.iters) if config.plan.iters is not None
                            else f"{config.plan.duration_s:g} s of"))
    records: list[BenchRecord] = []
    with _interrupt_flag() as stopped, tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name in targets:
            target = resolve_target(name, alpha=config.alpha, resolution=config.resolution,
                                    precisions=config.precisions, workdir=Path(tmp))
            groups = make_cases(target, runtimes=config.runtimes, precisions=config.precisions,
                                batches=config.batches, threads=config.threads,
                                device=config.device)
            eval_data = eval_data_for(config, target.input_shape, target.files)
            for group in groups:
                if stopped():
                    break
                total = len(group) * (config.plan.iters or config.rounds)
                tick = (lambda n, t=total: progress(n, t)) if progress else None
                records += run_group(group, config.plan, peak_gmacs=cond["peak_gmacs"],
                                     rounds=config.rounds, eval_data=eval_data,
                                     progress=tick, stop=stopped)
            if stopped():
                cond["interrupted"] = True
                break
    add_speedups(records, baseline=_is_baseline)
    return records, cond


def _is_baseline(r: BenchRecord) -> bool:
    """PyTorch eager fp32 when measured (the issue's reference), else the first fp32 case."""
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
    images = pre.nchw_uint8(ds.images[:n])
    if images.shape[1:] != input_shape:
        raise EdgeCNNError(f"preprocessed images are {images.shape[1:]}, model takes {input_shape}")
    return images.astype(np.float32), ds.labels[:n].astype(np.int64)


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
