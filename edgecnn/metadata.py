"""What an exported ONNX file says about itself, in its `metadata_props`.

The export stage writes these keys; the torch-free runtime reads them and needs nothing else
to preprocess images and name predictions. Values are strings (ONNX's rule); lists are JSON.
Reading never evaluates anything: JSON only, every field type-checked, bad values refused.
This module imports nothing heavy (the runtime shares it).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from edgecnn.errors import EdgeCNNError

FORMAT = "edgecnn-onnx/1"
PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("NCHW", "NHWC")  # what the runtime's preprocessing lays out
OUTPUTS = ("logits", "probabilities")  # probabilities: the graph ends in Softmax


@dataclass(frozen=True)
class ArtifactMetadata:
    model: str  # zoo name, e.g. "mobilenet"
    alpha: float
    resolution: int  # input side in pixels (square)
    in_chans: int
    mean: tuple[float, ...]  # per input channel, in [0, 1] pixel units
    std: tuple[float, ...]
    classes: tuple[str, ...]  # class names, index = logit position
    precision: str = "fp32"  # fp32 | fp16 | int8 (of the weights and compute)
    trained: bool = False  # False: initialized weights, good for latency work only
    input_name: str = "input"
    output_name: str = "logits"
    layout: str = "NCHW"
    output: str = "logits"  # what the first output holds; predict applies softmax to logits only
    source_checkpoint_sha256: str = ""  # "" when exported without a checkpoint
    dataset: str = ""
    edgecnn_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # free-form notes (calibration, ...)

    def __post_init__(self) -> None:
        _check(self)

    def to_props(self) -> dict[str, str]:
        """As ONNX metadata_props: every key prefixed `edgecnn.`, every value a string."""
        props = {"edgecnn.format": FORMAT}
        for key, value in asdict(self).items():
            if key == "extra":
                continue
            if isinstance(value, (list, tuple, dict)):
                text = json.dumps(list(value) if not isinstance(value, dict) else value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            props[f"edgecnn.{key}"] = text
        for key, value in self.extra.items():
            props[f"edgecnn.extra.{key}"] = str(value)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "artifact") -> ArtifactMetadata:
        """Parse metadata_props written by `to_props`; a clear error if absent or malformed."""
        if props.get("edgecnn.format") != FORMAT:
            raise EdgeCNNError(f"{source} has no edgecnn metadata (format {FORMAT!r}); "
                               "pass the preprocessing explicitly")
        values: dict[str, Any] = {}
        extra = {k.removeprefix("edgecnn.extra."): v for k, v in props.items()
                 if k.startswith("edgecnn.extra.")}
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = f"edgecnn.{f.name}"
            if key not in props:
                if f.name in ("model", "alpha", "resolution", "in_chans", "mean", "std",
                              "classes"):
                    raise EdgeCNNError(f"{source}: metadata lacks {key!r}")
                continue
            values[f.name] = _parse(f.name, props[key], source)
        try:
            return cls(**values, extra=extra)
        except EdgeCNNError as exc:
            raise EdgeCNNError(f"{source}: {exc}") from None


def _parse(name: str, text: str, source: str) -> Any:
    try:
        if name in ("mean", "std"):
            return tuple(float(v) for v in _json_list(text))
        if name == "classes":
            return tuple(str(v) for v in _json_list(text))
        if name == "alpha":
            return float(text)
        if name in ("resolution", "in_chans"):
            return int(text)
        if name == "trained":
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
        return text
    except (ValueError, TypeError):
        raise EdgeCNNError(f"{source}: metadata {name!r} is malformed: {text[:60]!r}") from None


def _json_list(text: str) -> list:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _check(meta: ArtifactMetadata) -> None:
    if not (math.isfinite(meta.alpha) and meta.alpha > 0):
        raise EdgeCNNError(f"alpha must be positive, got {meta.alpha}")
    if meta.resolution < 1 or meta.in_chans < 1:
        raise EdgeCNNError("resolution and in_chans must be positive")
    if len(meta.mean) != meta.in_chans or len(meta.std) != meta.in_chans:
        raise EdgeCNNError(f"mean/std need {meta.in_chans} values (one per input channel)")
    if any(not (math.isfinite(s) and s > 0) for s in meta.std):
        raise EdgeCNNError("std values must be positive")
    if not meta.classes:
        raise EdgeCNNError("classes must not be empty")
    if meta.precision not in PRECISIONS:
        raise EdgeCNNError(f"precision must be one of {PRECISIONS}, got {meta.precision!r}")
    if meta.layout not in LAYOUTS:
        raise EdgeCNNError(f"layout must be one of {LAYOUTS}, got {meta.layout!r}")
    if meta.output not in OUTPUTS:
        raise EdgeCNNError(f"output must be one of {OUTPUTS}, got {meta.output!r}")
