"""`runtime="fastest"`: measure the installed CPU runtimes and thread counts for one ONNX file
on this machine once, cache the choice, and use it from then on.

    runtime, options, line = choose(Path("model.int8.onnx"), {}, loader.cpu_runners())
    # -> ("openvino", {"threads": 2}, "fastest: measured onnxruntime 1 thread 2.10 ms, ...")

The cache follows the TensorRT engines' discipline: one JSON file per ONNX file under
`<EDGECNN_CACHE or ~/.cache/edgecnn>/fastest/`, keyed by the machine (CPU model, cores), the
runtime versions and the file's sha256; written atomically (fileio); a key that differs
(another CPU, an upgraded runtime, a re-exported file) means measuring again. Timing: the
candidates are loaded together and timed in alternating blocks with a settle pause (ONNX
Runtime's idle workers spin after a run and would tax the next candidate), median of all
calls. The runtime layer cannot use the bench harness (bench sits above it), hence this
small loop. Torch-free, like the rest of the runtime.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.host import cache_root, cpu_model

RUNTIMES = ("onnxruntime", "openvino")  # the CPU runtimes compared
FORMAT = "edgecnn-fastest/1"


@dataclass(frozen=True)
class Plan:
    rounds: int = 3  # alternating blocks per candidate
    block_s: float = 0.25  # timed seconds per block
    settle_s: float = 0.1  # pause before each block (the previous one's workers go idle)
    warmup: int = 3  # untimed calls after the pause


@dataclass(frozen=True)
class Measured:
    runtime: str
    threads: int
    p50_ms: float
    calls: int


def cache_dir() -> Path:
    return cache_root() / "fastest"


def cache_key(path: Path) -> dict[str, Any]:
    """What a measurement is valid for: this CPU, these runtime versions, this file."""
    from edgecnn.fileio import file_sha256

    versions = {}
    for name in RUNTIMES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "runtimes": versions,
            "sha256": file_sha256(path)}


def choose(path: Path, options: dict[str, Any], runners: dict[str, type], *,
           cache: Path | None = None, plan: Plan = Plan()) -> tuple[str, dict[str, Any], str]:
    """(runtime, runner options, one line saying what was measured or read) for `path`.
    `runners`: the installed CPU runtimes' runner types (loader.cpu_runners()); `options`
    may fix `threads` (then only that count is tried); other options are the user's and
    pass through to the runtime chosen."""
    from edgecnn.fileio import atomic_write

    key = cache_key(path)
    file = (cache or cache_dir()) / f"{key['sha256'][:32]}.json"
    cached = _read(file)
    if cached is not None and cached.get("key") == key and (
            "threads" not in options or cached["choice"]["threads"] == options["threads"]):
        best = Measured(**cached["choice"])
        return best.runtime, {**options, "threads": best.threads}, \
            f"fastest: {_name(best)} (measured {cached['measured_utc']}, cached in {file})"
    stale = " (the cached choice was for another machine, runtime or file)" \
        if cached is not None else ""
    results = measure(path, options, runners, plan)
    best = min(results, key=lambda m: m.p50_ms)
    try:  # a cache that cannot be written costs a measurement next time, not the load
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, json.dumps({
            "format": FORMAT, "key": key, "file": str(path), "choice": asdict(best),
            "measured": [asdict(m) for m in results],
            "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "plan": asdict(plan)}, indent=2) + "\n")
        where = f"cached in {file}"
    except (OSError, EdgeCNNError) as exc:
        where = f"not cached: {exc}"
    said = ", ".join(f"{_name(m)} {m.p50_ms:.2f} ms" for m in results)
    return best.runtime, {**options, "threads": best.threads}, \
        f"fastest: measured {said} (p50, batch 1) -> {_name(best)}{stale}; {where}"


def measure(path: Path, options: dict[str, Any], runners: dict[str, type],
            plan: Plan = Plan()) -> list[Measured]:
    """p50 latency at batch 1 of every runtime in `runners` at 1 thread and at every core
    (or at `options['threads']`), timed in alternating blocks."""
    runtimes = [r for r in RUNTIMES if r in runners]
    if not runtimes:
        raise EdgeCNNError("runtime 'fastest' needs onnxruntime or openvino installed")
    counts = [options["threads"]] if options.get("threads") else sorted({1, os.cpu_count() or 1})
    live = []
    for name in runtimes:
        cls = runners[name]
        extra = {k: v for k, v in options.items() if k != "threads"}
        for threads in counts:
            runner = cls(path, "cpu", cls.options_type.from_kwargs(
                name, {**extra, "threads": threads}))
            live.append((name, threads, runner))
    shape = tuple(d if isinstance(d, int) else 1 for d in live[0][2].input.shape)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    samples: dict[int, list[float]] = {i: [] for i in range(len(live))}
    try:
        for _, _, runner in live:
            runner.activate()
        for _ in range(plan.rounds):
            for i, (_, _, runner) in enumerate(live):
                time.sleep(plan.settle_s)
                for _ in range(plan.warmup):
                    runner.infer(x)
                end = time.perf_counter() + plan.block_s
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    runner.infer(x)
                    samples[i].append(time.perf_counter() - t0)
    finally:
        for _, _, runner in live:
            runner.deactivate()
    return [Measured(name, threads, round(float(np.median(samples[i])) * 1e3, 4),
                     len(samples[i])) for i, (name, threads, _) in enumerate(live)]


def _read(file: Path) -> dict[str, Any] | None:
    """The cache entry, or None when absent or unreadable (then it is measured again)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    try:
        Measured(**data["choice"])
    except (KeyError, TypeError):
        return None
    return data


def _name(m: Measured) -> str:
    return f"{m.runtime} {m.threads} thread{'s' if m.threads > 1 else ''}"
