"""Tune one artifact on this machine.

    result = tune(TuneSpec("exports/mnv1", threads=2), log=print)
    result.choice       -> decision.TuneChoice (candidate, runtime, ms, reason)
    result.record       -> what tuning.json now holds for this device

1. Check the artifact: complete, writable, with an int8 file for a CPU target (TensorRT
   tunes at engine build, on its device); take its lock (one tune at a time).
2. Candidates, all from the files the export wrote: every block int8 (model.int8.onnx, the
   target's scheme vetted by the accuracy guard), every block float (model.onnx), a
   per-block placement searched here, at these threads (export/mixed.py's search over
   export/placement.py's rewrite of the int8 graph: no data, no quantizer needed), and,
   where the graph has them, every block int8 with sibling convolutions merged
   (export/merge.py: the same integers), the groups chosen per runtime by its profiler.
3. Time them side by side (timing/harness.py: interleaved rounds, rotated), in the asked
   runtime or every installed CPU runtime, with every-block-int8 timed twice: the two must
   agree, and how far they do not is the noise band. A band wider than `max_noise` is timed
   again (`retries`), then recorded as inconclusive.
4. `decision.choose_tuned` picks; the chosen graph is checked (it loads and runs in its
   runtime; a merged graph computes what the int8 file does); the tuned graph, when chosen,
   and tuning.json are written atomically, this device's record replaced and every other
   device's kept.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from edgecnn.errors import EdgeCNNError


class Measure(Protocol):
    """What tune measures with (tests inject their own)."""

    def profile(self, graphs: list[Any], blocks: dict[str, str],
                runtime: str = "onnxruntime") -> list[dict[str, float]]:
        """Kernel ms per block of each graph in `runtime` (the per-block search's profile)."""

    def time(self, cases: dict[tuple[str, str], Path]) -> dict[tuple[str, str], float]:
        """p50 ms at batch 1 of each (candidate, runtime)'s file, timed side by side."""


@dataclass(frozen=True)
class TuneSpec:
    artifact: str
    threads: int | None = None  # None: every core (what a device app runs with)
    runtime: Literal["auto", "onnxruntime", "openvino"] = "auto"
    max_noise: float = 0.05  # a wider noise band (the same file timed twice) separates nothing
    retries: int = 2  # timings again when the band is wider
    measure: Any = field(default=None, compare=False)  # Measure; None: this machine


@dataclass
class TuneResult:
    choice: Any  # decision.TuneChoice
    record: dict[str, Any]
    path: Path  # tuning.json


def tune(spec: TuneSpec, *, log: Callable[[str], None] = lambda line: None) -> TuneResult:
    from edgecnn.export.decision import choose_tuned
    from edgecnn.host import device, device_key

    artifact = Path(spec.artifact)
    report = _check_artifact(artifact)
    threads = check_threads(spec.threads)
    runtimes = _runtimes(spec.runtime)
    shape = _input_shape(report)
    measure = spec.measure or MeasuredOnThisMachine(shape, threads)
    with _lock(artifact):
        import onnx

        fp32_path, int8_path = artifact / "model.onnx", artifact / "model.int8.onnx"
        int8 = onnx.load(str(int8_path), load_external_data=False)
        log(f"tuning {artifact} on this machine: {', '.join(runtimes)}, {threads} thread(s), "
            "batch 1")
        warning = _weight_range_warning(report)
        if warning:
            log(f"warning: {warning}")
        log("searching a per-block int8 placement (each block's latency int8 and float), "
            "one candidate of those timed whole below")
        placement, search = _search(onnx.load(str(fp32_path), load_external_data=False), int8,
                                    measure, threads,
                                    lambda line: log(f"the placement candidate: {line}"))
        with _scratch(artifact) as tmp:
            files = {"int8": int8_path, "float": fp32_path}
            if placement is not None:
                files["placement"] = tmp / "placement.onnx"
                onnx.save_model(placement, str(files["placement"]))
            files["int8_again"] = int8_path  # the same file twice: the noise band
            cases = {(name, rt): path for name, path in files.items() for rt in runtimes}
            merged, merges = _merges(int8, int8_path, measure, runtimes, threads, tmp, log)
            cases.update({("merged", rt): path for rt, path in merged.items()})
            for attempt in range(1 + spec.retries):
                log(f"timing {len(cases) - len(runtimes)} candidate files x runtimes in "
                    f"{', '.join(runtimes)} (and the int8 file twice: the noise band)")
                ms = measure.time(cases)
                noise = max(abs(ms[("int8", r)] - ms[("int8_again", r)])
                            / min(ms[("int8", r)], ms[("int8_again", r)]) for r in runtimes)
                timed = {k: v for k, v in ms.items() if k[0] != "int8_again"}
                choice = choose_tuned(timed, runtimes[0], noise, spec.max_noise)
                if not choice.inconclusive:  # decided (a win larger than even a wide band)
                    break
                log(f"the same file timed {noise:.1%} apart: the machine is busy; timing again"
                    f" ({attempt + 1} of {spec.retries})" if attempt < spec.retries else
                    f"the same file timed {noise:.1%} apart after {spec.retries} retries")
            source = cases[(choice.candidate, choice.runtime)]
            tuned = choice.candidate in ("placement", "merged")  # a graph tune wrote
            file = f"model.int8.tuned-{device_key(device())}.onnx" if tuned else source.name
            _verify(source, choice.runtime, threads)  # a merged file was checked by _merges
            record = _record(report, choice, file, timed, noise, threads, search, merges,
                             int8_path)
            if tuned:  # the graph first: tuning.json commits it
                _atomic_copy(source, artifact / file)
            previous = _this_devices_file(artifact)
            try:
                path = _write_record(artifact, record)
            except BaseException:  # Ctrl-C or a full disk: no graph without its record
                if tuned and not _recorded(artifact, file):
                    (artifact / file).unlink(missing_ok=True)
                raise
            if previous and previous != file and previous.startswith("model.int8.tuned-"):
                (artifact / previous).unlink(missing_ok=True)  # no graph no record names
    log(("tune: " + choice.reason) if not choice.inconclusive else f"tune: {choice.reason}")
    return TuneResult(choice, record, path)


# --- checks ---------------------------------------------------------------------------------

def _check_artifact(artifact: Path) -> dict[str, Any]:
    from edgecnn.runtime.onnx_file import read_onnx
    from edgecnn.runtime.tuning import read_tunings, require_artifact_dir

    require_artifact_dir(artifact)
    try:
        report = json.loads((artifact / "export.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeCNNError(f"{artifact}: no export.json (not an edgecnn artifact, or one "
                           "partly written)") from None
    except (OSError, ValueError) as exc:
        raise EdgeCNNError(f"{artifact}/export.json: unreadable ({exc})") from None
    if not (artifact / "model.onnx").is_file():
        raise EdgeCNNError(f"{artifact}: no model.onnx (an artifact partly written?)")
    scheme = (report.get("target") or {}).get("int8_scheme") or {}
    if scheme.get("activations") == "int8-symmetric":
        raise EdgeCNNError(f"{artifact}: a TensorRT-target artifact; TensorRT tunes its int8 "
                           "when it builds the engine on the device")
    int8 = report.get("int8")
    if not int8 or not (artifact / "model.int8.onnx").is_file():
        why = f" ({int8['reason']})" if int8 and int8.get("written") is False else ""
        raise EdgeCNNError(f"{artifact}: no int8 model to tune{why}; export it with --int8")
    if not os.access(artifact, os.W_OK) or not artifact.stat().st_mode & 0o222:
        # the mode bits too: root may write anywhere, but a directory marked read-only is
        # the user saying not to
        raise EdgeCNNError(f"{artifact}: read-only; tune records its measurement in the "
                           "artifact")
    for name in ("model.onnx", "model.int8.onnx"):  # a damaged file: one line, before work
        read_onnx(artifact / name)
    read_tunings(artifact)  # a damaged record too, not after the timings
    return report


def _weight_range_warning(report: dict[str, Any]) -> str | None:
    """8-bit weights on an x86 CPU without VNNI: its AVX2 u8 x s8 kernel's int16 sums
    saturate (quantize.weight_range): the artifact's recipe was for another CPU."""
    from edgecnn.host import int8_saturates

    scheme = (report.get("target") or {}).get("int8_scheme") or {}
    if scheme.get("weight_range") == "full" and int8_saturates():
        return (f"the int8 file has 8-bit weights (target {report['target'].get('name')}), "
                "and this x86 CPU has no VNNI: its int8 kernels saturate; export for cpu-x86 "
                "(7-bit weights) for this device")
    return None


def check_threads(threads: int | None) -> int:
    """The thread count a model will run with: None is every core; 1..cores, else one line."""
    cores = os.cpu_count() or 1
    if threads is None:
        return cores
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cores:
        raise EdgeCNNError(f"--threads must be 1..{cores} (this machine's cores), got {threads}")
    return threads


def _runtimes(runtime: str) -> tuple[str, ...]:
    from edgecnn.runtime.loader import INSTALL, installed

    if runtime == "auto":
        found = tuple(r for r in ("onnxruntime", "openvino") if installed(r))
        if not found:
            raise EdgeCNNError(f"no CPU runtime installed: {INSTALL['onnxruntime']}")
        return found
    if runtime not in ("onnxruntime", "openvino"):
        raise EdgeCNNError(f"--runtime must be auto, onnxruntime or openvino, got {runtime!r}")
    if not installed(runtime):
        raise EdgeCNNError(f"{runtime} is not installed: {INSTALL[runtime]}")
    return (runtime,)


def _input_shape(report: dict[str, Any]) -> tuple[int, int, int, int]:
    res = int(report["resolution"])
    return (1, int(report["in_chans"]), res, res)


@contextlib.contextmanager
def _lock(artifact: Path) -> Iterator[None]:
    """One tune at a time per artifact (an advisory lock the OS drops with the process)."""
    path = artifact / ".tune.lock"
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise EdgeCNNError(f"{artifact}: cannot take the tune lock ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdgeCNNError(f"{artifact}: another edgecnn tune is running on it") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _scratch(artifact: Path) -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".tune-", dir=artifact) as tmp:
        yield Path(tmp)


# --- measuring ------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeasuredOnThisMachine:
    """The real measurement: ONNX Runtime's profiler per block (the search), the bench
    harness for whole files (interleaved, rotated rounds)."""

    input_shape: tuple[int, ...]
    threads: int
    iters: int = 60
    rounds: int = 6
    ov_profile_runs: int = 64  # OpenVINO's counters tick in microseconds: more runs

    def profile(self, graphs: list[Any], blocks: dict[str, str],
                runtime: str = "onnxruntime") -> list[dict[str, float]]:
        import numpy as np

        from edgecnn.export.mixed import MeasuredTimer, MixedConfig
        from edgecnn.export.ov_profile import profile_blocks_ov

        if runtime == "openvino":
            x = np.random.default_rng(0).standard_normal(self.input_shape, dtype=np.float32)
            return profile_blocks_ov(graphs, x, blocks, self.threads, self.ov_profile_runs)
        return MeasuredTimer(self.input_shape, MixedConfig(threads=self.threads)).profile(
            graphs, blocks)

    def time(self, cases: dict[tuple[str, str], Path]) -> dict[tuple[str, str], float]:
        from edgecnn.runtime.loader import runner_class
        from edgecnn.timing.harness import BenchCase, run_group
        from edgecnn.timing.loop import STEADY_BLOCK_S, TimingPlan

        group = []
        for (name, runtime), path in cases.items():
            cls = runner_class(runtime)
            opts = cls.options_type.from_kwargs(runtime, {"threads": self.threads})
            group.append(BenchCase(name, runtime, "tune", 1,
                                   input_shape=tuple(self.input_shape[1:]),
                                   make_runner=lambda c=cls, p=path, o=opts: c(p, "cpu", o)))
        records = run_group(group, TimingPlan(iters=self.iters, min_block_s=STEADY_BLOCK_S),
                            peak_gmacs=None, rounds=self.rounds)
        if len(records) < len(group):  # the harness stops early on Ctrl-C: pass it on
            raise KeyboardInterrupt
        return {(r.model, r.runtime): r.latency_ms_p50 for r in records}


def _search(fp32: Any, int8: Any, measure: Any, threads: int,
            log: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """The per-block placement at these threads, or None when it is every block int8 or
    every block float (both timed anyway)."""
    from edgecnn.export.mixed import MixedConfig, search_blocks
    from edgecnn.export.placement import compute_skeleton, with_float_nodes

    result = search_blocks(compute_skeleton(int8), lambda floats: with_float_nodes(int8, floats),
                           measure, MixedConfig(threads=threads), reference=fp32, log=log)
    record = {k: result.record[k] for k in ("chosen", "float_blocks", "candidates_profiled_ms",
                                            "search_s")}
    return (result.proto if result.record["chosen"] not in ("int8", "float") else None), record


def _verify(path: Path, runtime: str, threads: int, same_as: Path | None = None) -> None:
    """The chosen file loads and computes finite logits in its runtime; with `same_as`, the
    logits that file computes, to within one step of its output's int8 grid (a merged graph
    computes the same integers, export/merge.py), or 1e-4 of their largest where no
    DequantizeLinear writes the output."""
    import numpy as np

    from edgecnn.runtime.loader import load

    def logits(file: Path) -> np.ndarray:
        with load(file, runtime=runtime, device="cpu", threads=threads) as model:
            shape = (1, *model.runner.input.shape[1:])
            x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            return model.runner.infer(x)

    out = logits(path)
    if not np.all(np.isfinite(out)):
        raise EdgeCNNError(f"{path.name} computes non-finite logits in {runtime}; nothing "
                           "was recorded")
    if same_as is not None:
        ref = logits(same_as)
        step = _output_step(same_as) or 1e-4 * float(np.abs(ref).max())
        if out.shape != ref.shape or float(np.abs(out - ref).max()) > 1.01 * step:
            raise EdgeCNNError(f"the merged graph's logits differ from {same_as.name}'s in "
                               f"{runtime} (by more than one output step); nothing was "
                               "recorded")


def _output_step(path: Path) -> float | None:
    """The scale of the DequantizeLinear that writes the graph's first output, if one does."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if (node.op_type == "DequantizeLinear" and node.output[0] == proto.graph.output[0].name
                and node.input[1] in inits):
            return float(numpy_helper.to_array(inits[node.input[1]]).max())
    return None


def _merges(int8: Any, int8_path: Path, measure: Any, runtimes: tuple[str, ...], threads: int,
            tmp: Path, log: Callable[[str], None]) -> tuple[dict[str, Path], dict[str, Any]]:
    """The merged candidate per runtime (export/merge.py): the int8 graph with the sibling
    groups merged that its profiler runs faster merged, on this machine, checked to compute
    the int8 file's logits there before it is timed; ({runtime: file}, the record). Empty
    where the graph has no such group or none pays. A runtime that cannot run or check the
    rewrite loses only this candidate."""
    import onnx

    from edgecnn.export.merge import choose_merges, group_ms, merge, sibling_groups

    groups = sibling_groups(int8)
    if not groups:
        return {}, {}
    every = merge(int8, groups)
    blocks = {b: b for g in groups for b in g.blocks}
    files, record = {}, {}
    for rt in runtimes:
        try:
            unmerged, merged = measure.profile([int8, every], blocks, runtime=rt)
            chosen = choose_merges(groups, unmerged, merged)
            record[rt] = {"groups": len(groups),  # the Concats merge.py could merge
                          "in_merged_file": [g.concat for g in chosen],
                          "profiled_ms": {g.concat: {"unmerged": round(group_ms(unmerged, g), 4),
                                                     "merged": round(group_ms(merged, g), 4)}
                                          for g in groups}}
            log(f"convolutions that feed one Concat: {len(chosen)} of {len(groups)} groups "
                f"profile faster merged into one in {rt}")
            if chosen:
                path = tmp / f"merged-{rt}.onnx"
                onnx.save_model(merge(int8, chosen), str(path))
                _verify(path, rt, threads, same_as=int8_path)
                files[rt] = path
        except Exception as exc:  # noqa: BLE001 - the other candidates stand without it
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            record[rt] = {**record.get(rt, {"groups": len(groups)}), "refused": detail}
            log(f"the merged candidate in {rt} is left out: {detail}")
    return files, record


# --- the record -----------------------------------------------------------------------------

def _record(report: dict[str, Any], choice: Any, file: str, ms: dict[tuple[str, str], float],
            noise: float, threads: int, search: dict[str, Any], merges: dict[str, Any],
            int8_path: Path) -> dict[str, Any]:
    from edgecnn import __version__
    from edgecnn.fileio import file_sha256
    from edgecnn.host import device
    from edgecnn.runtime.tuning import runtime_version

    fp32 = {rt: v for (c, rt), v in ms.items() if c == "float"}
    return {
        "device": device(), "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"), "edgecnn_version": __version__,
        "runtime": choice.runtime, "runtime_version": runtime_version(choice.runtime),
        "runtime_versions": {rt: runtime_version(rt) for rt in fp32},
        "threads": threads, "batch": 1, "file": file, "candidate": choice.candidate,
        "chosen_ms": round(choice.ms, 4), "reason": choice.reason,
        "inconclusive": choice.inconclusive, "noise_band": round(noise, 4),
        "candidates_ms": {f"{c} {rt}": round(v, 4) for (c, rt), v in sorted(ms.items())},
        "speedup_vs_fp32": {f"{c} {rt}": round(fp32[rt] / v, 3)
                            for (c, rt), v in sorted(ms.items()) if rt in fp32},
        "search": search, "merge": merges, "int8_sha256": file_sha256(int8_path),
        "accuracy": "the accuracy guard's figures in export.json are every block int8's; "
                    "blocks in float only drop int8 rounding (their weights are the int8 "
                    "file's, dequantized); merged convolutions compute the same integers",
        "model": report.get("model"),
    }


def _write_record(artifact: Path, record: dict[str, Any]) -> Path:
    from edgecnn.fileio import atomic_write
    from edgecnn.host import device_key
    from edgecnn.runtime.tuning import FILE, FORMAT, read_tunings

    devices = dict(read_tunings(artifact))
    devices[device_key(record["device"])] = record
    return atomic_write(artifact / FILE, json.dumps({"format": FORMAT, "devices": devices},
                                                   indent=2) + "\n")


def _this_devices_file(artifact: Path) -> str | None:
    from edgecnn.host import device, device_key
    from edgecnn.runtime.tuning import read_tunings

    try:
        return (read_tunings(artifact).get(device_key(device())) or {}).get("file")
    except EdgeCNNError:
        return None


def _recorded(artifact: Path, file: str) -> bool:
    from edgecnn.runtime.tuning import read_tunings

    try:
        return any(r.get("file") == file for r in read_tunings(artifact).values())
    except EdgeCNNError:
        return False


def _atomic_copy(src: Path, dst: Path) -> None:
    from edgecnn.fileio import atomic_file

    with atomic_file(dst) as f, open(src, "rb") as s:
        f.write(s.read())
