"""Deployment targets: small YAML recipes in the root `export/` folder, one per target.

The folder ships inside the package as `edgecnn.recipes` (see setup.py), so the recipes are
read with importlib.resources: the same lookup from a checkout and from an installed wheel.

A recipe says what the target's runtime accepts (opsets, IR version, precisions) and how to
quantize for it; `--target` takes a recipe name (`cpu-x86`) or a path to such a file:

    name: tensorrt
    precisions: [fp32, fp16, int8]
    opset: 17            # default opset; min_opset..max_opset is what the runtime reads
    min_opset: 13
    max_opset: 20
    max_ir_version: 9
    int8:
      activations: int8-symmetric     # or uint8-asymmetric
      weights: int8-per-channel
      calib_method: minmax            # minmax | entropy | percentile
      tensorrt_checks: true           # run the offline TensorRT QDQ checker
      weight_range: full              # full | reduced (7-bit weights: x86 without VNNI)
      mixed_precision: true           # --int8-blocks auto allowed: blocks timed here (CPU)
      signed_input: false             # true: a signed network input as int8, zero point 0

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable

# The repository's export/ folder, installed as package data: target recipes and the
# pipeline recipe. A Traversable (a Path for every on-disk install).
RECIPE_DIR = files("edgecnn.recipes")
DEFAULT_TARGET = "cpu-x86"
CALIB_METHODS = ("minmax", "entropy", "percentile")
Activations = Literal["uint8-asymmetric", "int8-symmetric"]
WEIGHT_RANGES = ("full", "reduced")


@dataclass(frozen=True)
class Int8Scheme:
    """How activations and weights are quantized for a target."""

    # uint8-asymmetric: x86/ARM CPUs (u8 x s8 kernels; MobileNet 0.5 1.66x faster than fp32
    # on a 2-core Xeon, ONNX Runtime 1.31, benchmarks/README.md);
    # int8-symmetric: TensorRT's explicit quantization (zero points must be 0).
    activations: Activations = "uint8-asymmetric"
    # Per output channel (axis 0), symmetric: depthwise convolutions have wildly different
    # ranges per channel, and one scale per tensor is where MobileNets collapse.
    weights: Literal["int8-per-channel"] = "int8-per-channel"
    calib_method: str = "minmax"
    tensorrt_checks: bool = False
    # full: weights in [-127, 127]; reduced: [-64, 64] (7 bits), for x86 CPUs without VNNI,
    # whose u8 x s8 kernel (VPMADDUBSW) adds two u8*s8 products into a saturating int16:
    # 255 * 127 * 2 overflows it, 255 * 64 * 2 does not. The recipe says which: the target
    # decides, never the CPU that happens to export (cpu-x86 runs on AVX2 too: reduced;
    # cpu-x86-vnni: full).
    weight_range: Literal["full", "reduced"] = "full"
    # Whether `--int8-blocks auto` may keep float the blocks whose int8 is slower, as
    # measured on the exporting machine (export/mixed.py): false for a CPU that is not the
    # one exporting (an Arm board). Without it, every block is int8 (the target's scheme).
    mixed_precision: bool = True
    # true: a network input whose calibrated range holds negative values (normalized images)
    # is quantized int8 symmetric, zero point 0, as NNCF quantizes it; every other activation
    # keeps `activations`. OpenVINO then runs the first convolution without zero-point
    # arithmetic, and ONNX Runtime fuses it as before (benchmarks/tune/signed_input.md).
    # Costs resolution only on a lopsided range (mnist5k normalized to [-0.43, 2.82]: a step
    # of 0.022 where u8 had 0.013). A range without negatives keeps u8, zero point 0.
    signed_input: bool = False

    @property
    def symmetric_activations(self) -> bool:
        return self.activations == "int8-symmetric"


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    precisions: tuple[str, ...]
    opset: int
    min_opset: int
    max_opset: int
    max_ir_version: int
    int8: Int8Scheme
    source: str  # the file it was read from

    def check_opset(self, opset: int) -> None:
        if not self.min_opset <= opset <= self.max_opset:
            raise EdgeCNNError(f"target {self.name} takes opsets {self.min_opset}..{self.max_opset}"
                               f", not {opset}")

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise EdgeCNNError(f"target {self.name} does not run {precision} (it runs "
                               f"{', '.join(self.precisions)})")


def recipe_file(name: str) -> Traversable:
    """A recipe shipped with edgecnn (`cpu-x86.yaml`, `pipeline.yaml`), as a Traversable."""
    return RECIPE_DIR.joinpath(name)


def list_targets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in RECIPE_DIR.iterdir()
                  if p.name.endswith(".yaml") and _is_target_file(p))


def load_target(name_or_path: str | Path = DEFAULT_TARGET) -> Target:
    """A target by recipe name (`cpu-x86`) or by the path of a YAML recipe."""
    text = str(name_or_path)
    path: Path | Traversable = Path(text).expanduser()
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        path = recipe_file(f"{text}.yaml")
        if not path.is_file():
            known = list_targets()
            close = difflib.get_close_matches(text, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise EdgeCNNError(f"unknown target {text!r}{hint}; known: {', '.join(known)}")
    if not path.is_file():
        raise EdgeCNNError(f"{path}: no such target recipe")
    return _parse(_read_yaml(path), str(path))


def _is_target_file(path: Traversable) -> bool:
    try:
        return isinstance(data := _read_yaml(path), dict) and "max_ir_version" in data
    except EdgeCNNError:
        return False


def _read_yaml(path: Path | Traversable) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EdgeCNNError(f"{path}: not a readable YAML recipe "
                           f"({str(exc).splitlines()[0][:100]})") from None


_KEYS = {"name", "description", "precisions", "opset", "min_opset", "max_opset",
         "max_ir_version", "int8"}
_INT8_KEYS = {"activations", "weights", "calib_method", "tensorrt_checks", "weight_range",
              "mixed_precision", "signed_input"}


def _parse(data: Any, source: str) -> Target:
    if not isinstance(data, dict):
        raise EdgeCNNError(f"{source}: a target recipe is a YAML mapping")
    unknown = set(data) - _KEYS
    missing = {"name", "precisions", "opset", "max_ir_version"} - set(data)
    if unknown or missing:
        raise EdgeCNNError(f"{source}: " + (f"unknown keys {sorted(unknown)}" if unknown
                                             else f"missing keys {sorted(missing)}"))
    int8 = data.get("int8") or {}
    if not isinstance(int8, dict) or set(int8) - _INT8_KEYS:
        raise EdgeCNNError(f"{source}: int8 must be a mapping of {sorted(_INT8_KEYS)}")
    try:
        scheme = Int8Scheme(**int8)
        precisions = tuple(str(p) for p in data["precisions"])
        opset = _int(data["opset"], "opset", source)
        target = Target(
            name=str(data["name"]), description=str(data.get("description", "")),
            precisions=precisions, opset=opset,
            min_opset=_int(data.get("min_opset", opset), "min_opset", source),
            max_opset=_int(data.get("max_opset", opset), "max_opset", source),
            max_ir_version=_int(data["max_ir_version"], "max_ir_version", source),
            int8=scheme, source=source,
        )
    except TypeError as exc:
        raise EdgeCNNError(f"{source}: {exc}") from None
    _validate(target)
    return target


def _int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EdgeCNNError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _validate(t: Target) -> None:
    where = t.source
    if not t.precisions or set(t.precisions) - {"fp32", "fp16", "int8"} or "fp32" not in t.precisions:
        raise EdgeCNNError(f"{where}: precisions must include fp32 and be among fp32, fp16, int8")
    if not 7 <= t.min_opset <= t.opset <= t.max_opset:
        raise EdgeCNNError(f"{where}: need 7 <= min_opset <= opset <= max_opset")
    if not 3 <= t.max_ir_version <= 13:
        raise EdgeCNNError(f"{where}: max_ir_version must be in 3..13")
    if t.int8.activations not in ("uint8-asymmetric", "int8-symmetric"):
        raise EdgeCNNError(f"{where}: int8.activations must be uint8-asymmetric or int8-symmetric")
    if t.int8.weights != "int8-per-channel":
        raise EdgeCNNError(f"{where}: int8.weights must be int8-per-channel")
    if t.int8.calib_method not in CALIB_METHODS:
        raise EdgeCNNError(f"{where}: int8.calib_method must be one of {', '.join(CALIB_METHODS)}")
    if t.int8.weight_range not in WEIGHT_RANGES:
        raise EdgeCNNError(f"{where}: int8.weight_range must be one of "
                           f"{', '.join(WEIGHT_RANGES)}")
    for key in ("mixed_precision", "signed_input"):
        if not isinstance(getattr(t.int8, key), bool):
            raise EdgeCNNError(f"{where}: int8.{key} must be true or false")
    if t.int8.tensorrt_checks and not t.int8.symmetric_activations:
        raise EdgeCNNError(f"{where}: TensorRT checks need int8-symmetric activations")
