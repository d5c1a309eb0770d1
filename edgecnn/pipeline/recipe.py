"""The pipeline recipe: one small YAML file, read into typed dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default). Reading the recipe
checks alpha, the counts and sizes, prune.ratio and bench.runtimes (_validate); the other
values (the optimizer, export target, calibration method...) are checked by the stage that
uses them, so a wrong one there fails only when that stage starts. The default recipe is
export/pipeline.yaml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError


@dataclass(frozen=True)
class TrainStage:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None  # None: the optimizer's default
    seed: int = 0


@dataclass(frozen=True)
class PruneStage:
    ratio: float | None = 0.5  # share of MACs removed (structured); None: no pruning
    method: str = "structured"
    finetune_epochs: int = 3


@dataclass(frozen=True)
class ExportStage:
    target: str = "cpu-x86"
    int8: bool = True
    calib_samples: int = 256
    calib_method: str | None = None  # None: the target's
    max_drop: float = 1.0  # top-1 points int8 may lose before the guard steps in


@dataclass(frozen=True)
class BenchStage:
    runtimes: tuple[str, ...] = ("torch-eager", "onnxruntime", "openvino")
    batch: int = 1
    iters: int = 200
    threads: int | None = None  # None: all cores


@dataclass(frozen=True)
class Recipe:
    model: str = "mobilenet"
    alpha: float = 0.5
    resolution: int = 32
    data: str = "mnist5k"
    train: TrainStage = field(default_factory=TrainStage)
    prune: PruneStage = field(default_factory=PruneStage)
    export: ExportStage = field(default_factory=ExportStage)
    bench: BenchStage = field(default_factory=BenchStage)

    def section(self, name: str) -> dict[str, Any]:
        """A stage's settings plus the recipe-wide ones it depends on (for change detection)."""
        common = {"model": self.model, "alpha": self.alpha, "resolution": self.resolution,
                  "data": self.data}
        return {**common, **dataclasses.asdict(getattr(self, name))}


_SECTIONS = {"train": TrainStage, "prune": PruneStage, "export": ExportStage,
             "bench": BenchStage}


def load_recipe(path: str | Path) -> Recipe:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"{path}: no such recipe file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise EdgeCNNError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise EdgeCNNError(f"{path}: a recipe is a mapping of settings")
    return recipe_from_dict(raw, source=str(path))


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    top = {f.name: f for f in dataclasses.fields(Recipe)}
    _no_unknown(raw, top, source)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise EdgeCNNError(f"{source}: {key} must be a mapping")
            cls = _SECTIONS[key]
            _no_unknown(value, {f.name: f for f in dataclasses.fields(cls)}, f"{source}: {key}")
            value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
            kwargs[key] = cls(**value)
        else:
            kwargs[key] = value
    recipe = Recipe(**kwargs)
    _validate(recipe, source)
    return recipe


def _no_unknown(raw: dict[str, Any], known: dict[str, Any], source: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise EdgeCNNError(f"{source}: unknown setting {unknown[0]!r}; known: "
                           f"{', '.join(known)}")


def _validate(r: Recipe, source: str) -> None:
    def positive_int(name: str, v: Any, minimum: int = 1) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise EdgeCNNError(f"{source}: {name} must be an integer >= {minimum}, got {v!r}")

    if not isinstance(r.model, str) or not isinstance(r.data, str):
        raise EdgeCNNError(f"{source}: model and data must be strings")
    if isinstance(r.alpha, bool) or not isinstance(r.alpha, (int, float)) or r.alpha <= 0:
        raise EdgeCNNError(f"{source}: alpha must be a positive number, got {r.alpha!r}")
    positive_int("resolution", r.resolution)
    positive_int("train.epochs", r.train.epochs)
    positive_int("train.batch_size", r.train.batch_size)
    positive_int("prune.finetune_epochs", r.prune.finetune_epochs, 0)
    positive_int("export.calib_samples", r.export.calib_samples)
    positive_int("bench.batch", r.bench.batch)
    positive_int("bench.iters", r.bench.iters)
    if r.bench.threads is not None:
        positive_int("bench.threads", r.bench.threads)
    if r.prune.ratio is not None and not (isinstance(r.prune.ratio, (int, float))
                                          and 0 < r.prune.ratio < 1):
        raise EdgeCNNError(f"{source}: prune.ratio must be in (0, 1) or null, "
                           f"got {r.prune.ratio!r}")
    allowed = ("torch-eager", "onnxruntime", "openvino", "tensorrt")
    bad = [x for x in r.bench.runtimes if x not in allowed]
    if bad:
        raise EdgeCNNError(f"{source}: bench.runtimes: {bad[0]!r} is not one of "
                           f"{', '.join(allowed)}")
