"""One export as one typed spec: a source, a target, and what to do to the model on the way.

    ExportSpec(ZooSource("mobilenet", alpha=0.5), int8=Int8Spec("mnist5k"))
    ExportSpec(ZooSource("mypkg.nets:small_cnn", num_classes=10))      # an import path
    ExportSpec(CheckpointSource("runs/m/best.pt"), prune=PruneSpec(0.5, finetune_epochs=2),
               int8=Int8Spec("mnist5k"), fp16=True)
    ExportSpec(ModuleSource(net, resolution=64, mean=(0.5,) * 3, std=(0.25,) * 3,
                            classes=("cat", "dog")))
    ExportSpec(OnnxSource("other.onnx", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                          labels="labels.txt"), int8=Int8Spec("imagefolder:photos"))

Each part checks itself when made (a one-line EdgeCNNError) and holds its own defaults: the
CLI (`cli/export.py`) and the pipeline recipe (`pipeline/recipe.py`) pass only what the user
set. `ExportSpec.check()` judges the parts together against the target, before the model is
loaded or any file is written. Importing this module imports neither torch nor onnx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from edgecnn.errors import EdgeCNNError
from edgecnn.export.targets import CALIB_METHODS, DEFAULT_TARGET, Target, load_target

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

INT8_MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the axis attribute)
RANDOM = "random"  # Int8Spec("random"): latency-only int8, says so in the artifact


# --------------------------------------------------------------------------------------------
# Sources.

@dataclass(frozen=True)
class ZooSource:
    """A zoo name or an import path `package.module:callable`: initialized weights."""

    name: str
    alpha: float | None = None  # None: 1.0
    resolution: int | None = None  # None: the model's default
    num_classes: int | None = None  # None: the model's default
    in_chans: int | None = None  # None: the model's default
    round_channels: int | None = None  # None: the paper's widths; 8: multiples of 8

    def __post_init__(self) -> None:
        _text("model name", self.name)
        _optional_int("round_channels", self.round_channels, 2)
        if self.alpha is not None:
            _number("alpha", self.alpha, low=0.0, low_open=True)
        _optional_int("resolution", self.resolution, 1)
        _optional_int("num_classes", self.num_classes, 1)
        _optional_int("in_chans", self.in_chans, 1)


@dataclass(frozen=True)
class CheckpointSource:
    """A checkpoint from `edgecnn train`; the model is rebuilt from it alone. Values given
    here must agree with the checkpoint (they are checks, not overrides)."""

    path: str
    alpha: float | None = None
    resolution: int | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        _text("checkpoint path", str(self.path))
        _optional_int("resolution", self.resolution, 1)
        _optional_int("num_classes", self.num_classes, 1)


@dataclass(frozen=True, eq=False)
class ModuleSource:
    """A user's own nn.Module (Python API) with what the artifact needs to know about it."""

    module: nn.Module
    resolution: int
    mean: tuple[float, ...]  # per input channel, 0-1 pixel scale
    std: tuple[float, ...]
    classes: tuple[str, ...] | int  # names, or a count (names "0".."n-1")
    in_chans: int | None = None  # None: the first convolution's input channels
    name: str = ""  # "" : the module's class name
    trained: bool = True
    data: str = ""  # data set it was trained on: fine-tuning after pruning, torch accuracy

    def __post_init__(self) -> None:
        if not hasattr(self.module, "forward") or not hasattr(self.module, "parameters"):
            raise EdgeCNNError(f"ModuleSource needs an nn.Module, got "
                               f"{type(self.module).__name__}")
        _optional_int("resolution", self.resolution, 1)
        _optional_int("in_chans", self.in_chans, 1)
        check_mean_std(self.mean, self.std, self.in_chans)
        if isinstance(self.classes, int) and not isinstance(self.classes, bool):
            _optional_int("classes", self.classes, 1)
        elif not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise EdgeCNNError("classes must be a positive count or a list of names")


@dataclass(frozen=True)
class OnnxSource:
    """An ONNX image classifier written by another tool. The preprocessing comes from here
    when the file carries no edgecnn metadata."""

    path: str
    mean: tuple[float, ...] | None = None  # 0-1 pixel scale, one per input channel
    std: tuple[float, ...] | None = None
    resolution: int | None = None  # needed when the file's input size is dynamic
    labels: str | None = None  # a text file, one class name per line

    def __post_init__(self) -> None:
        _text("ONNX path", str(self.path))
        _optional_int("resolution", self.resolution, 1)
        if (self.mean is None) != (self.std is None):
            raise EdgeCNNError("--mean and --std go together")
        if self.mean is not None:
            check_mean_std(self.mean, self.std, None)


Source = Union[ZooSource, CheckpointSource, ModuleSource, OnnxSource]


# --------------------------------------------------------------------------------------------
# What is done to the model.

@dataclass(frozen=True)
class PruneSpec:
    ratio: float  # structured: share of MACs removed; unstructured: share of weights zeroed
    method: Literal["structured", "unstructured"] = "structured"
    scope: Literal["uniform", "global"] = "uniform"  # structured: per layer, or ranked globally
    finetune_epochs: int = 0  # after pruning, on the data set the model was trained on
    round_to: int = 8  # channel counts stay multiples of this (structured)
    # train.finetune's optimizer, at a tenth of its from-scratch learning rate: SGD 0.01, or
    # AdamW 2e-4 for models trained with AdamW (SGD at 0.01 took an 80%-pruned SqueezeNet 1.1,
    # which has no BatchNorm, to 17.8%: benchmarks/compress/deep_compression.md)
    finetune_optimizer: Literal["sgd", "adamw"] = "sgd"
    # unstructured: reach `ratio` in this many prune + fine-tune steps (export/prune.py
    # ratio_steps), finetune_epochs each
    steps: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) \
                or not 0.0 < self.ratio < 1.0:
            raise EdgeCNNError(f"prune ratio must be in (0, 1), got {self.ratio!r}")
        if self.method not in ("structured", "unstructured"):
            raise EdgeCNNError(f"prune method must be structured or unstructured, "
                               f"got {self.method!r}")
        if self.scope not in ("uniform", "global"):
            raise EdgeCNNError(f"prune scope must be uniform or global, got {self.scope!r}")
        _optional_int("finetune epochs", self.finetune_epochs, 0)
        _optional_int("round_to", self.round_to, 1)
        if self.finetune_optimizer not in ("sgd", "adamw"):
            raise EdgeCNNError(f"finetune optimizer must be sgd or adamw, "
                               f"got {self.finetune_optimizer!r}")
        _optional_int("prune steps", self.steps, 1)
        if self.steps > 1 and self.method != "unstructured":
            raise EdgeCNNError("prune steps apply to unstructured pruning (structured pruning "
                               "already removes channels in small steps)")
        if self.steps > 1 and not self.finetune_epochs:
            raise EdgeCNNError("prune steps need fine-tuning epochs: without fine-tuning "
                               "between them, steps prune exactly what one step would")


@dataclass(frozen=True)
class Int8Spec:
    calib_data: str  # data set spec (train split calibrates, val split checks), or "random"
    calib_samples: int = 256
    calib_method: str | None = None  # None: the target's
    max_drop: float = 1.0  # top-1 points int8 may lose (models with the data's classes)
    min_agreement: float = 99.0  # percent int8/fp32 top-1 agreement (models with other classes)
    qat_epochs: int = 0  # quantization-aware training as the guard's last step
    # "all": every block int8 (float only where the guard says), the file written whatever
    # its speed; "auto": blocks slower in int8 on this machine stay float, and no int8 file
    # when int8 is faster nowhere (CPU recipes with int8.mixed_precision); None: "all"
    blocks: Literal["all", "auto"] | None = None
    # What the int8 decision measures latency with (export.mixed.Timer); None: this
    # machine. Tests inject one so that their decisions do not depend on the machine's speed.
    timer: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _text("--calib-data", self.calib_data)
        if self.blocks not in (None, "all", "auto"):
            raise EdgeCNNError(f"--int8-blocks must be all or auto, got {self.blocks!r}")
        _optional_int("calibration samples", self.calib_samples, 1)
        if self.calib_method is not None and self.calib_method not in CALIB_METHODS:
            raise EdgeCNNError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, "
                               f"got {self.calib_method!r}")
        _number("max drop", self.max_drop, low=0.0)
        _number("min agreement", self.min_agreement, low=0.0, high=100.0, high_closed=True)
        _optional_int("QAT epochs", self.qat_epochs, 0)
        if self.qat_epochs and self.calib_data == RANDOM:
            raise EdgeCNNError("--qat-epochs needs real data, not --calib-data random")

    @property
    def random(self) -> bool:
        return self.calib_data == RANDOM


@dataclass(frozen=True)
class ExportSpec:
    source: Source
    target: str = DEFAULT_TARGET  # recipe name or path
    prune: PruneSpec | None = None
    int8: Int8Spec | None = None
    fp16: bool = False  # with int8 too: one artifact holding fp32, fp16 and int8
    opset: int | None = None  # None: the target's
    dynamic_batch: bool = False
    output: str | None = None  # None: exports/<model>-a<alpha>-r<resolution>
    force: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.source, (ZooSource, CheckpointSource, ModuleSource, OnnxSource)):
            raise EdgeCNNError(f"an export source is a ZooSource, CheckpointSource, "
                               f"ModuleSource or OnnxSource, got {type(self.source).__name__}")
        _optional_int("opset", self.opset, 1)
        _optional_int("seed", self.seed, 0)

    def to_dict(self) -> dict[str, Any]:
        """For export.json: every field, a module named by its class (not copied)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if is_dataclass(value):
                value = {k.name: getattr(value, k.name) for k in fields(value)}
                for key in ("module", "timer"):  # objects: named by their class
                    if value.get(key) is not None:
                        value[key] = type(value[key]).__name__
                value = {"kind": type(getattr(self, f.name)).__name__, **value}
            out[f.name] = value
        return out

    def target_recipe(self) -> Target:
        return load_target(self.target)

    def check(self) -> Target:
        """The parts judged together against the target; returns the target."""
        target = self.target_recipe()
        opset = target.opset if self.opset is None else self.opset
        target.check_opset(opset)
        src = self.source
        if self.int8 is not None:
            target.check_precision("int8")
            if opset < INT8_MIN_OPSET:
                raise EdgeCNNError(f"int8 needs opset >= {INT8_MIN_OPSET} (per-channel Q/DQ), "
                                   f"got {opset}")
        if self.int8 is not None and self.int8.blocks == "auto" and (
                not target.int8.mixed_precision or target.int8.symmetric_activations):
            raise EdgeCNNError(f"--int8-blocks auto times blocks on this machine; target "
                               f"{target.name} runs elsewhere (every block int8: --int8-blocks "
                               "all, its default)")
        if self.fp16:
            target.check_precision("fp16")
        if isinstance(src, OnnxSource):
            if self.prune is not None:
                raise EdgeCNNError("--prune needs the PyTorch graph (structured pruning follows "
                                   "its dependencies); an ONNX file cannot be pruned")
            if self.int8 is not None and self.int8.qat_epochs:
                raise EdgeCNNError("--qat-epochs needs a PyTorch model, not an ONNX file")
        if self.prune is not None and self.prune.finetune_epochs and isinstance(src, ZooSource):
            raise EdgeCNNError("--finetune-epochs needs a checkpoint: the model is fine-tuned "
                               "on the data set it was trained on")
        if self.int8 is not None and self.int8.qat_epochs and isinstance(src, ZooSource):
            raise EdgeCNNError("--qat-epochs needs a checkpoint: quantization-aware training "
                               "fine-tunes a trained model")
        return target


# --------------------------------------------------------------------------------------------
# From the command line's words to a source.

def source_from_text(text: str, *, alpha: float | None = None, resolution: int | None = None,
                     num_classes: int | None = None, mean: tuple[float, ...] | None = None,
                     std: tuple[float, ...] | None = None, labels: str | None = None,
                     round_channels: int | None = None) -> Source:
    """MODEL|CHECKPOINT|FILE.onnx as typed on the command line; flags that do not apply to
    that kind of source are errors, not ignored."""
    path = Path(text).expanduser()
    if path.suffix.lower() == ".onnx":
        for flag, value in (("--alpha", alpha), ("--num-classes", num_classes)):
            if value is not None:
                raise EdgeCNNError(f"{flag} does not apply to an ONNX file (its graph is fixed)")
        return OnnxSource(str(path), mean=mean, std=std, resolution=resolution, labels=labels)
    for flag, value in (("--mean", mean), ("--std", std), ("--labels", labels)):
        if value is not None:
            raise EdgeCNNError(f"{flag} applies to ONNX files only (a zoo model or checkpoint "
                               "knows its preprocessing and classes)")
    if round_channels is not None and (path.is_file() or path.suffix in (".pt", ".pth")
                                       or path.suffix.lower() == ".onnx"):
        raise EdgeCNNError("--round-channels applies to zoo names (a checkpoint or ONNX file "
                           "has its widths)")
    if path.is_file() or path.suffix in (".pt", ".pth"):
        return CheckpointSource(str(path), alpha=alpha, resolution=resolution,
                                num_classes=num_classes)
    return ZooSource(text, alpha=alpha, resolution=resolution, num_classes=num_classes,
                     round_channels=round_channels)


def check_mean_std(mean: Any, std: Any, channels: int | None) -> None:
    """Per-channel mean and std on the 0-1 pixel scale, `channels` of each when known."""
    for label, values in (("mean", mean), ("std", std)):
        if not isinstance(values, (tuple, list)) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values):
            raise EdgeCNNError(f"{label} must be numbers, one per input channel, got {values!r}")
    if len(mean) != len(std):
        raise EdgeCNNError(f"mean has {len(mean)} values and std {len(std)}: give one per "
                           "input channel")
    if channels is not None and len(mean) != channels:
        raise EdgeCNNError(f"mean/std have {len(mean)} values, the model takes {channels} "
                           "input channels")
    if any(s <= 0 for s in std):
        raise EdgeCNNError(f"std values must be positive, got {tuple(std)}")


def _text(label: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise EdgeCNNError(f"{label} must be a non-empty string, got {value!r}")


def _optional_int(label: str, value: Any, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < low):
        raise EdgeCNNError(f"{label} must be an integer >= {low}, got {value!r}")


def _number(label: str, value: Any, *, low: float, high: float | None = None,
            low_open: bool = False, high_closed: bool = False) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and (value > low if low_open else value >= low)
          and (high is None or (value <= high if high_closed else value < high)))
    if not ok:
        raise EdgeCNNError(f"{label} must be {'>' if low_open else '>='} {low:g}"
                           f"{f' and <= {high:g}' if high is not None else ''}, got {value!r}")


__all__ = ["CheckpointSource", "ExportSpec", "INT8_MIN_OPSET", "Int8Spec", "ModuleSource",
           "OnnxSource", "PruneSpec", "RANDOM", "Source", "ZooSource", "check_mean_std",
           "source_from_text"]
