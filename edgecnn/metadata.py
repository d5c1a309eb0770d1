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
# What predict and deploy/app.py print (after "warning: ") for an artifact with trained false.
UNTRAINED_WARNING = ("this artifact has untrained weights (exported for latency work); its "
                     "predictions mean nothing")
RESIZES = ("squash", "shorter")
ALPHAS = ("drop", "black", "white")
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "box", "nearest")  # Pillow's filters


@dataclass(frozen=True)
class PreprocessPolicy:
    """How an image file becomes the model's pixels, step by step in this order (the one
    implementation is edgecnn.runtime.preprocess; a device app that reimplements it needs
    exactly these facts):

    1. exif     True: apply the EXIF orientation tag (phones store rotation there)
    2. alpha    transparent pixels: "drop" the alpha channel (the colour stored under it
                shows; what training did before policies existed), or composite on "black"
                or "white"
    3. channels gray models: RGB -> L with ITU-R BT.601 luma rounded to integers (Pillow's
                "L"); RGB models: gray repeated. 16-bit gray is scaled to 8 bits (v * 255 /
                65535), never clipped; CMYK goes through Pillow's RGB conversion
    4. resize   "squash": the whole frame to the model's size (aspect not kept);
                "shorter": the centred region of the model's aspect ratio, `crop` of the
                shorter side (torchvision's 0.875 = 224/256 convention), resized to the
                model's size in one resampling
    5. interpolation  a Pillow filter; `antialias` True: it widens when shrinking (OpenCV's
                INTER_LINEAR does not), then pixels are rounded to 8-bit integers
    then (pixel / 255 - mean) / std per channel.
    """

    resize: str = "squash"
    crop: float = 1.0  # share of the shorter side kept by "shorter" (1.0 for "squash")
    exif: bool = True
    alpha: str = "drop"
    interpolation: str = "bilinear"
    antialias: bool = True  # a fact about Pillow's filters, recorded for reimplementations
    to_gray: str = "bt601"
    to_rgb: str = "repeat"

    def __post_init__(self) -> None:
        if self.resize not in RESIZES:
            raise EdgeCNNError(f"preprocess resize must be one of {RESIZES}, got {self.resize!r}")
        if self.alpha not in ALPHAS:
            raise EdgeCNNError(f"preprocess alpha must be one of {ALPHAS}, got {self.alpha!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise EdgeCNNError(f"preprocess interpolation must be one of {INTERPOLATIONS}, "
                               f"got {self.interpolation!r}")
        crop = self.crop
        if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1:
            raise EdgeCNNError(f"preprocess crop must be in (0, 1], got {crop!r}")
        if self.resize == "squash" and crop != 1:
            raise EdgeCNNError("preprocess crop < 1 needs resize 'shorter' (squash keeps the "
                               "whole frame)")
        for name in ("exif", "antialias"):
            if not isinstance(getattr(self, name), bool):
                raise EdgeCNNError(f"preprocess {name} must be true or false")
        if not self.antialias or self.to_gray != "bt601" or self.to_rgb != "repeat":
            raise EdgeCNNError("preprocess antialias/to_gray/to_rgb: only Pillow's behaviour "
                               "(true, 'bt601', 'repeat') is implemented")

    @classmethod
    def from_json(cls, text: str, source: str = "artifact") -> PreprocessPolicy:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        known = {f.name for f in fields(cls)}
        if not isinstance(value, dict) or not set(value) <= known:
            raise EdgeCNNError(f"{source}: metadata 'preprocess' is malformed: {text[:60]!r}")
        try:
            return cls(**value)
        except (EdgeCNNError, TypeError) as exc:
            raise EdgeCNNError(f"{source}: {exc}") from None


# Digits and other small fixed-size images: the whole frame.
SQUASH = PreprocessPolicy()
# Photos (an imagefolder: data set): shorter side and a centre crop, torchvision's convention.
PHOTOS = PreprocessPolicy(resize="shorter", crop=0.875)
# What the runtime did before policies were recorded: artifacts without the field get it.
LEGACY = PreprocessPolicy(exif=False, alpha="white")


def policy_for_dataset(spec: str) -> PreprocessPolicy:
    """The policy a data set spec chooses: photos for image folders, squash for the rest."""
    return PHOTOS if spec.partition(":")[0] == "imagefolder" else SQUASH


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
    # None: the policy `dataset` chooses (policy_for_dataset); files without the field: LEGACY
    preprocess: PreprocessPolicy | None = None

    def __post_init__(self) -> None:
        if self.preprocess is None:
            object.__setattr__(self, "preprocess", policy_for_dataset(self.dataset))
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
                if f.name == "preprocess":  # exported before policies were recorded
                    values["preprocess"] = LEGACY
                    continue
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
        if name == "preprocess":
            return PreprocessPolicy.from_json(text, source)
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
    if not isinstance(meta.preprocess, PreprocessPolicy):
        raise EdgeCNNError(f"preprocess must be a PreprocessPolicy, got "
                           f"{type(meta.preprocess).__name__}")
    if meta.output not in OUTPUTS:
        raise EdgeCNNError(f"output must be one of {OUTPUTS}, got {meta.output!r}")
