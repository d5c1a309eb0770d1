"""`load`: an artifact (or a bare ONNX file) to a ready `Model`, on the runtime asked for or
the best one installed.

runtime="auto" goes down this list and takes the first that is installed and fits the device:
  1. tensorrt     on an NVIDIA GPU (device "auto" with a GPU present, or "cuda[:N]")
  2. onnxruntime  with the CUDA provider on an NVIDIA GPU, else on the CPU
  3. openvino     (the CPU, or an Intel GPU/NPU named by the device)
and records why in `Model.selection` (also logged to the "edgecnn.runtime" logger).
Availability is checked with importlib's find_spec (nothing is imported to find out), and
a chosen runtime that then fails is an error, not a silent move to the next one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.base import OnnxRunner
from edgecnn.runtime.model import Model
from edgecnn.runtime.onnx_file import OnnxInfo, read_onnx
from edgecnn.runtime.preprocess import Preprocess

log = logging.getLogger("edgecnn.runtime")

RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
# What `pip install` brings each runtime (the module names differ from some packages').
INSTALL = {
    "onnxruntime": "pip install onnxruntime (onnxruntime-gpu for NVIDIA GPUs)",
    "openvino": "pip install openvino",
    "tensorrt": "pip install tensorrt cuda-python (on Jetson: JetPack's python3-libnvinfer, "
                "see deploy/jetson)",
}
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}
PRECISION_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def load(path: str | os.PathLike[str], runtime: str = "auto", device: str = "auto", *,
         precision: str | None = None, preprocess: Preprocess | None = None,
         mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
         resolution: int | tuple[int, int] | None = None,
         classes: Sequence[str] | None = None, **options: Any) -> Model:
    """Load an artifact directory (model.onnx + export.json) or an .onnx file.

    runtime: "auto", "onnxruntime", "openvino", "tensorrt", or "fastest". With "auto", an
        artifact directory and no precision: the file, runtime and threads that `edgecnn
        tune` recorded for this machine (runtime/tuning.py), when one fits; the selection
        line says whether there was one. "fastest": that record, required.
    device: "auto" (an NVIDIA GPU when present, else the CPU), "cpu", "cuda[:N]", or an
        OpenVINO device name ("GPU", "NPU", "GPU.1") for openvino.
    precision: in an artifact directory, pick model.onnx (fp32), model.fp16.onnx or
        model.int8.onnx.
    preprocess / mean, std, resolution, classes: needed for an ONNX file without edgecnn
        metadata (resolution only when its input size is dynamic; the layout, NCHW or NHWC,
        is read from the input's shape); given with one that has it, they replace its values.
        A graph that ends in Softmax is detected: predict then applies no second softmax.
    options: the runner's typed options (OrtOptions, OvOptions, TrtOptions fields), e.g.
        threads=2; an option the chosen runtime lacks is an error.
    """
    tuned_note, tuned = None, None
    if runtime == "fastest" or (runtime == "auto" and precision is None
                                and device in ("auto", "cpu") and Path(path).is_dir()):
        # what `edgecnn tune` measured on this machine, if it fits ("fastest": required)
        from edgecnn.runtime.tuning import for_this_machine

        if runtime == "fastest" and (precision is not None or device not in ("auto", "cpu")
                                     or not Path(path).is_dir()):
            raise EdgeCNNError("runtime 'fastest' is the file, CPU runtime and threads that "
                               "`edgecnn tune` recorded for this machine in an artifact "
                               "directory (no precision or device to give)")
        tuned, tuned_note = for_this_machine(path)
        if tuned is not None:
            path, runtime, device = Path(path) / tuned.file, tuned.runtime, "cpu"
            options.setdefault("threads", tuned.threads)
        elif runtime == "fastest":
            raise EdgeCNNError(f"runtime 'fastest' needs a tuning of this machine ({tuned_note})"
                               "; or name a runtime (onnxruntime, openvino)")
    model_path = resolve_path(path, precision)
    info = read_onnx(model_path)
    meta = metadata_of(info)
    pre = preprocess_for(info, preprocess, mean=mean, std=std, resolution=resolution)
    labels = tuple(str(c) for c in classes) if classes is not None else (
        meta.classes if meta is not None else None)
    check_classes(info, labels)
    runner_type, device, selection = select_runtime(runtime, device)
    if tuned is not None:  # the record chose the runtime, not the user
        selection = f"{runtime} on {device}: {tuned_note}"
    elif tuned_note:
        selection = f"{selection}; {tuned_note}"
    runner = runner_type(model_path, device, runner_type.options_type.from_kwargs(
        runner_type.name, options), info=info)
    # The graph is the truth (a Softmax at its end); the metadata says so for our exports.
    probabilities = info.softmax_output or (meta is not None and meta.output == "probabilities")
    model = Model(runner, pre, meta, labels, selection, model_path,
                  probabilities=probabilities)
    log.info("%s: %s", model_path, selection)
    return model


def resolve_path(path: str | os.PathLike[str], precision: str | None) -> Path:
    path = Path(path)
    if precision is not None and precision not in PRECISION_FILES:
        raise EdgeCNNError(f"precision must be one of {', '.join(PRECISION_FILES)}, "
                           f"got {precision!r}")
    if path.is_dir():
        target = path / PRECISION_FILES[precision or "fp32"]
        if not target.is_file():
            missing = not_produced(path, precision or "fp32")
            if missing:
                raise EdgeCNNError(f"{path}: {missing}")
            onnx_files = sorted(p.name for p in path.glob("*.onnx"))
            raise EdgeCNNError(f"{path}: no {target.name} in this artifact directory"
                               + (f" (it has {', '.join(onnx_files)})" if onnx_files else ""))
        return target
    if precision is not None:
        raise EdgeCNNError("precision picks a file in an artifact directory; "
                           f"{path} is a file")
    if not path.exists():
        raise EdgeCNNError(f"{path}: no such file or artifact directory")
    return path


def not_produced(artifact: Path, precision: str) -> str | None:
    """"int8 not produced: <why>" when the export was asked for int8 and decided against
    writing the file (export/decision.py records why in export.json), else None."""
    import json

    try:
        section = json.loads((artifact / "export.json").read_text(encoding="utf-8"))[precision]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(section, dict) and section.get("written") is False:
        return f"{precision} not produced: {section.get('reason', 'no reason recorded')}"
    return None


def metadata_of(info: OnnxInfo) -> Any:
    """ArtifactMetadata from metadata_props, None when the file has no edgecnn metadata."""
    from edgecnn.metadata import FORMAT, ArtifactMetadata

    if info.metadata_props.get("edgecnn.format") != FORMAT:
        return None
    return ArtifactMetadata.from_props(info.metadata_props, source=str(info.path))


def preprocess_for(info: OnnxInfo, preprocess: Preprocess | None = None, *,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   resolution: int | tuple[int, int] | None = None) -> Preprocess:
    """The preprocessing of a file: explicit arguments first, then its edgecnn metadata,
    then its input's shape (layout, resolution, channels); what is still missing is an error
    that says what to pass. What `load` uses, for other callers (bench, export)."""
    meta = metadata_of(info)
    if preprocess is not None:
        if not isinstance(preprocess, Preprocess):
            raise EdgeCNNError(f"preprocess must be a Preprocess, got {type(preprocess).__name__}")
        if any(v is not None for v in (mean, std, resolution)):
            raise EdgeCNNError("pass either preprocess or mean/std/resolution, not both")
        return preprocess
    if meta is not None:
        base = Preprocess.from_metadata(meta)
        return Preprocess(resolution if resolution is not None else base.resolution,
                          mean if mean is not None else base.mean,
                          std if std is not None else base.std, layout=base.layout,
                          policy=base.policy)
    if mean is None or std is None:
        raise EdgeCNNError(f"{info.path} has no edgecnn metadata: pass mean and std (and "
                           "resolution when the model's input size is not fixed), or a "
                           "Preprocess")
    layout = info.layout
    shape = info.inputs[0].shape if len(info.inputs) == 1 else None
    size = (shape[1:3] if layout == "NHWC" else shape[2:4]) if shape and len(shape) == 4 \
        else None
    if resolution is None:
        if not size or None in size:
            raise EdgeCNNError(f"{info.path}: the input size is not fixed; pass resolution")
        resolution = tuple(size)  # type: ignore[assignment]
    channels = (shape[3] if layout == "NHWC" else shape[1]) if size else None
    if channels is not None and len(mean) != channels:
        raise EdgeCNNError(f"mean has {len(mean)} values but {info.path} takes {channels} "
                           f"channel{'s' if channels > 1 else ''}")
    return Preprocess(resolution, tuple(mean), tuple(std), layout=layout)  # type: ignore[arg-type]


def check_classes(info: OnnxInfo, labels: tuple[str, ...] | None) -> None:
    """Class names must match the output's classes when the file fixes them."""
    shape = info.outputs[0].shape if info.outputs else None
    if labels is None or not shape or len(shape) < 2 or shape[1] is None:
        return
    if len(labels) != shape[1]:
        raise EdgeCNNError(f"{len(labels)} class names for the {shape[1]} classes of "
                           f"{info.path}")


def installed(runtime: str) -> bool:
    try:
        return importlib.util.find_spec(_MODULES[runtime]) is not None
    except (ImportError, ValueError):  # a broken install is not an installed one
        return False


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver with a GPU (desktop/server), or a Jetson (Tegra) board."""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    return Path("/etc/nv_tegra_release").exists()


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def runner_class(runtime: str) -> type[OnnxRunner]:
    """The runner type of a runtime, imported on demand; a missing runtime says what to
    install."""
    if runtime not in RUNTIMES:
        raise EdgeCNNError(f"unknown runtime {runtime!r}; choose auto, {', '.join(RUNTIMES)}")
    if not installed(runtime):
        raise EdgeCNNError(f"{runtime} is not installed: {INSTALL[runtime]}")
    if runtime == "onnxruntime":
        from edgecnn.runtime.ort_runner import OrtRunner
        return OrtRunner
    if runtime == "openvino":
        from edgecnn.runtime.ov_runner import OvRunner
        return OvRunner
    from edgecnn.runtime.trt_runner import TrtRunner
    return TrtRunner


def select_runtime(runtime: str, device: str) -> tuple[type[OnnxRunner], str, str]:
    """(runner type, concrete device, one line saying what was chosen and why)."""
    if not isinstance(runtime, str) or not isinstance(device, str) or not device:
        raise EdgeCNNError(f"runtime and device must be names, got {runtime!r}, {device!r}")
    gpu = device == "auto" and nvidia_gpu_present()
    if runtime != "auto":
        if device == "auto":
            device = "cuda" if runtime == "tensorrt" or (
                gpu and runtime == "onnxruntime" and installed(runtime) and _ort_has_cuda()) \
                else "cpu"
        cls = runner_class(runtime)
        return cls, device, f"{runtime} on {device} (asked for)"
    skipped: list[str] = []
    if device == "auto":
        device = "cuda" if gpu else "cpu"
    if device.startswith("cuda"):
        if installed("tensorrt"):
            return runner_class("tensorrt"), device, f"auto: tensorrt on {device}"
        skipped.append("tensorrt not installed")
        if installed("onnxruntime") and _ort_has_cuda():
            return (runner_class("onnxruntime"), device,
                    f"auto: onnxruntime with CUDA on {device} ({'; '.join(skipped)})")
        skipped.append("onnxruntime has no CUDA provider")
        if not gpu:  # the user named a CUDA device: no CPU stand-in for it
            raise EdgeCNNError(f"no runtime for {device} is installed ({'; '.join(skipped)}): "
                               f"{INSTALL['tensorrt']}, or pip install onnxruntime-gpu")
        device = "cpu"  # device "auto" on a GPU machine without GPU runtimes: the CPU
    if device == "cpu" and installed("onnxruntime"):
        note = f" ({'; '.join(skipped)})" if skipped else ""
        return runner_class("onnxruntime"), device, f"auto: onnxruntime on cpu{note}"
    if installed("openvino"):
        return runner_class("openvino"), device, f"auto: openvino on {device}"
    raise EdgeCNNError(f"no runtime for device {device!r} is installed: {INSTALL['onnxruntime']}"
                       f", or {INSTALL['openvino']}")
