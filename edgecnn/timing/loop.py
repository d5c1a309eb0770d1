"""The timing loop: warm-up, rotated input buffers, perf_counter around every call.

Nothing here knows about runtimes: it times `infer(batch)`, and `sync()` after each call
when the work is asynchronous (CUDA), so that a call's time includes its work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Infer = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class TimingPlan:
    warmup: int = 10  # untimed calls first: lazy allocation, kernel selection, caches
    iters: int | None = 200  # timed calls; or ...
    duration_s: float | None = None  # ... time for this long (iters must then be None)
    buffers: int = 4  # distinct inputs rotated, so no run reads a cache-hot copy of the last
    # When runners alternate, a pause after a block of a runner whose workers spin
    # (Runner.spins_after_run: ONNX Runtime with more than one thread): its idle workers
    # keep spinning 50-100 ms after a run, and while they do, the next runner has one core
    # less. Measured (2-core Xeon, ORT 1.31, MobileNet 0.5, fp32 vs int8 alternating blocks):
    # 2.00 / 1.49 ms without a pause, 1.36 / 0.89 ms with 0.1 s, 1.38 / 0.94 ms each alone.
    # The pause ends once the process is idle (harness.wait_until_idle), 45-60 ms here;
    # this is its limit, reached on a busy machine, where the spinning workers get less CPU.
    settle_s: float = 0.1
    block_warmup: int = 3  # untimed calls after the pause: the parked workers wake up
    # With `iters`: a case whose first block ran shorter than this gets longer blocks (the
    # same share of calls per round, scaled up), so that a sub-0.2 ms model is not timed in
    # blocks of ~1 ms, where a thread's wake-up weighs as much as the calls (MobileNet 0.25x
    # at 32 px, 0.1 ms, 2-vCPU Xeon: the same file's two cases 15-17% apart in 10-call
    # blocks). 0: blocks of iters / rounds calls whatever their length.
    min_block_s: float = 0.0


STEADY_BLOCK_S = 0.02  # the min_block_s of tune's and export's int8-vs-fp32 timings


def make_inputs(shape: Sequence[int], count: int, dtype: Any = np.float32,
                seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(shape)).astype(dtype) for _ in range(count)]


def warm_up(infer: Infer, inputs: Sequence[np.ndarray], n: int,
            sync: Callable[[], None] | None = None) -> None:
    for i in range(n):
        infer(inputs[i % len(inputs)])
    if sync:
        sync()


def time_block(infer: Infer, inputs: Sequence[np.ndarray], n: int,
               sync: Callable[[], None] | None = None, start: int = 0) -> list[float]:
    """Time `n` calls; returns seconds per call. `start` continues the buffer rotation."""
    samples: list[float] = []
    clock = time.perf_counter
    for i in range(start, start + n):
        x = inputs[i % len(inputs)]
        t0 = clock()
        infer(x)
        if sync:
            sync()
        samples.append(clock() - t0)
    return samples
