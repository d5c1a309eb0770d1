"""From what the user names (artifact directory, ONNX file, zoo name) to benchmark cases.

Torch-free for artifacts and ONNX files, so the same command runs on a Jetson. A zoo name
is exported on the fly (that needs the torch extra), and the "torch" runtime builds the
PyTorch model the artifact describes; both import torch only when asked for.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import INSTALL_TORCH, EdgeCNNError
from edgecnn.runtime.loader import PRECISION_FILES, runner_class
from edgecnn.runtime.onnx_file import OnnxInfo, read_onnx
from edgecnn.timing.harness import BenchCase

RUNTIMES = ("onnxruntime", "openvino", "tensorrt", "torch")
TORCH_MODES = ("eager", "compile", "cudagraphs")


@dataclass(frozen=True)
class BenchTarget:
    """A model to benchmark: its ONNX files by precision and what it is (export's Target,
    in edgecnn/export/targets.py, is the device a model is exported for)."""

    label: str  # "mobilenet-a0.5-r224"
    files: dict[str, Path]  # precision -> ONNX file
    input_shape: tuple[int, int, int]  # (C, H, W)
    info: dict[str, Any]  # export.json (params, macs, model, alpha...) or {}
    fixed_batch: int | None = None  # the files' static batch dimension; None when dynamic
    tuned: Any = None  # runtime.tuning.Tuned: what `edgecnn tune` recorded for this machine


def resolve_target(name: str, *, alpha: float, resolution: int | None, precisions: Sequence[str],
                   workdir: Path | None = None) -> BenchTarget:
    path = Path(name)
    if path.is_dir():
        return _from_artifact(path)
    if path.suffix == ".onnx" or path.exists():
        return _from_onnx(path, resolution)
    return _from_zoo(name, alpha=alpha, resolution=resolution, precisions=precisions,
                     workdir=workdir)


def _from_artifact(path: Path) -> BenchTarget:
    files = {p: path / f for p, f in PRECISION_FILES.items() if (path / f).is_file()}
    if "fp32" not in files and not files:
        raise EdgeCNNError(f"{path}: no model.onnx (is it an edgecnn export directory?)")
    info: dict[str, Any] = {}
    if (path / "export.json").is_file():
        try:
            info = json.loads((path / "export.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EdgeCNNError(f"{path / 'export.json'}: unreadable ({exc})") from None
        if not isinstance(info, dict):
            raise EdgeCNNError(f"{path / 'export.json'}: not a JSON object")
    from edgecnn.runtime.tuning import for_this_machine

    tuned, line = for_this_machine(path)
    info = {**info, "tuning_note": line}
    first = next(iter(files.values()))
    shape, batch = _input_shape(first, read_onnx(first))
    return BenchTarget(path.name, files, shape, info, batch, tuned)


def _from_onnx(path: Path, resolution: int | None = None) -> BenchTarget:
    onnx_info = read_onnx(path)
    precision = onnx_info.metadata_props.get("edgecnn.precision", "fp32")
    if precision not in PRECISION_FILES:
        precision = "fp32"
    shape, batch = _input_shape(path, onnx_info, resolution)
    return BenchTarget(path.stem, {precision: path}, shape, {}, batch)


def _input_shape(path: Path, info: OnnxInfo, resolution: int | None = None
                 ) -> tuple[tuple[int, int, int], int | None]:
    """(C, H, W), or (H, W, C) for an NHWC input, and the static batch (None when dynamic);
    `resolution` fills a dynamic H and W."""
    shape = info.inputs[0].shape or ()
    if len(shape) == 4 and resolution is not None:
        spatial = (1, 2) if info.layout == "NHWC" else (2, 3)
        shape = tuple(resolution if i in spatial and d is None else d
                      for i, d in enumerate(shape))
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise EdgeCNNError(f"{path}: expected an image input (N, C, H, W) with fixed C, H, W "
                           "(--resolution N sets a dynamic size)")
    return tuple(int(d) for d in shape[1:]), shape[0]  # type: ignore[return-value]


def _from_zoo(name: str, *, alpha: float, resolution: int | None, precisions: Sequence[str],
              workdir: Path | None) -> BenchTarget:
    """Export a zoo model for latency work: initialized weights, int8 calibrated on random
    images (the artifact says so), fp16 exported separately (one precision per export)."""
    if "/" in name or "\\" in name or name.endswith((".onnx", ".pt")):  # a path, not a name
        raise EdgeCNNError(f"{name}: no such artifact directory or ONNX file")
    try:
        from edgecnn.export.api import export
        from edgecnn.export.spec import ExportSpec, Int8Spec, ZooSource
    except ImportError as exc:
        raise EdgeCNNError(f"{name!r} is not a file or directory; benchmarking a zoo name "
                           f"exports it first, which needs the torch extra ({exc}): "
                           f"{INSTALL_TORCH}") from None
    root = Path(tempfile.mkdtemp(prefix="edgecnn-bench-", dir=workdir))
    source = ZooSource(name, alpha=alpha, resolution=resolution)
    out = root / "artifact"
    export(ExportSpec(source, output=str(out), dynamic_batch=True,
                      int8=Int8Spec("random") if "int8" in precisions else None))
    if "fp16" in precisions:
        # fp16 is a GPU precision: exported with the TensorRT recipe (CPU recipes refuse it)
        half = export(ExportSpec(source, output=str(root / "fp16"), fp16=True,
                                 dynamic_batch=True, target="tensorrt")).path
        shutil.move(str(half / PRECISION_FILES["fp16"]), str(out / PRECISION_FILES["fp16"]))
    target = _from_artifact(out)
    label = f"{name}-a{alpha:g}-r{target.input_shape[-1]}"  # the resolution actually exported
    return BenchTarget(label, target.files, target.input_shape, target.info,
                       target.fixed_batch)


def make_cases(target: BenchTarget, *, runtimes: Sequence[str], precisions: Sequence[str],
               batches: Sequence[int], threads: int, device: str
               ) -> list[list[BenchCase]]:
    """Cases grouped by batch size (one group = one interleaved comparison)."""
    if target.tuned is not None and "fastest" not in runtimes:
        runtimes = [*runtimes, "fastest"]  # what `edgecnn tune` recorded, beside the rest
    for p in precisions:
        if p not in target.files and not (p == "fp32" and "torch" in runtimes):
            raise EdgeCNNError(f"{target.label} has no {p} model "
                               f"({PRECISION_FILES.get(p, p)}): export it with --{p}")
    fixed = target.fixed_batch
    wrong = [b for b in batches if fixed is not None and b != fixed]
    if wrong:
        raise EdgeCNNError(f"{target.label} takes a fixed batch of {fixed}, not {wrong[0]}: "
                           "export it with --dynamic-batch to benchmark other batch sizes")
    groups = []
    for batch in batches:
        group = []
        for runtime in runtimes:
            # the tuned row: one per batch, in the precision of the file tune chose
            for precision in precisions if runtime != "fastest" else [_tuned_precision(target)]:
                case = _case(target, runtime, precision, batch, threads, device)
                if case is not None:
                    group.append(case)
        groups.append(group)
    return groups


def _tuned_precision(target: BenchTarget) -> str:
    """fp32 when tune chose the float file, else int8 (its int8 file or a placement of it)."""
    fp32 = target.files.get("fp32")
    tuned = target.tuned
    return "fp32" if tuned is not None and fp32 is not None and tuned.file == fp32.name \
        else "int8"


def _count(value: Any, when: str = "after") -> int | None:
    """export.json records {"before": n, "after": n} around pruning: the ONNX files are
    "after", the checkpoint PyTorch rebuilds is "before"."""
    value = value.get(when) if isinstance(value, dict) else value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def skip_reason(runtime: str, precision: str, device: str) -> str | None:
    """Why a (runtime, precision) row is not measured, or None when it is."""
    if runtime.startswith("torch") and precision == "int8":
        return (f"{runtime} int8 not measured: PyTorch int8 is not what users deploy (the "
                f"int8 ONNX model is measured in ONNX Runtime/OpenVINO)")
    if runtime.startswith("torch") and precision == "fp16" and device == "cpu":
        return f"{runtime} fp16 not measured on the CPU: PyTorch's fp16 convolutions are slow"
    return None


def _case(target: BenchTarget, runtime: str, precision: str, batch: int, threads: int,
          device: str) -> BenchCase | None:
    # PyTorch runs the model its checkpoint holds: for a pruned artifact, the one before
    # pruning (torch_side), so its row counts the MACs and parameters before pruning.
    when = "before" if runtime.startswith("torch") else "after"
    base = dict(model=target.label, precision=precision, batch=batch,
                input_shape=target.input_shape, macs=_count(target.info.get("macs"), when),
                params=_count(target.info.get("params"), when))
    if runtime.startswith("torch"):
        mode = runtime.partition("-")[2] or "eager"
        if skip_reason(runtime, precision, device):
            return None
        from edgecnn.bench.torch_side import torch_case

        return torch_case(target, mode, precision, batch, threads, device, base)
    if runtime == "fastest":  # what `edgecnn tune` recorded for this machine
        tuned = target.tuned
        if tuned is None:  # asked for by name (make_cases adds it only when there is one)
            raise EdgeCNNError(f"{target.label}: runtime 'fastest' needs a tuning of this "
                               f"machine ({target.info.get('tuning_note', 'not tuned')}); "
                               "or name a runtime (onnxruntime, openvino)")
        path = target.files["int8"].parent / tuned.file  # tune needs an int8 file
        runner_type = runner_class(tuned.runtime)
        opts = runner_type.options_type.from_kwargs(tuned.runtime, {"threads": tuned.threads})
        return BenchCase(runtime=f"fastest:{tuned.runtime}/{tuned.threads}t",
                         file_bytes=path.stat().st_size, path=path,
                         make_runner=lambda: runner_type(path, "cpu", opts), **base)
    if precision not in target.files:
        return None
    path = target.files[precision]
    runner_type = runner_class(runtime)
    options: dict[str, Any] = {"threads": threads} if runtime != "tensorrt" else {}
    opts = runner_type.options_type.from_kwargs(runtime, options)
    return BenchCase(runtime=runtime, file_bytes=path.stat().st_size, path=path,
                     make_runner=lambda: runner_type(path, device, opts), **base)
