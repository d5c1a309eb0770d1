"""The model registry: every zoo model is a builder function registered under its CLI name.

    @register_model("mobilenet", family="mobilenet", paper="Howard et al. 2017 ...", alpha=True)
    def mobilenet(*, alpha, num_classes, in_chans, **kwargs) -> nn.Module: ...

`create_model` looks the name up (one-line error with the closest names when unknown),
checks alpha, builds the model and attaches its `ModelSpec` as `model.spec`, together with
`model.config` (the exact arguments, enough to rebuild it) and an input-size check.

Wherever a zoo name is taken, an import path `package.module:callable` is taken too: the
callable returns an nn.Module and takes `num_classes` (and `in_chans` when it has that
parameter). `get_spec` resolves it here, so every command and the checkpoints (which record
the path as the model's name) gain it at once.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and the defaults it was designed for."""

    name: str
    family: str
    builder: Callable[..., nn.Module] = field(repr=False)
    paper: str  # citation of the paper the architecture follows
    resolution: int = 224  # the paper's input size (the resolution multiplier rho scales it)
    min_resolution: int = 32  # smallest input side it runs at (documented, tested)
    num_classes: int = 1000
    in_chans: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    has_alpha: bool = False  # whether the paper defines a width multiplier for it
    aliases: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str,
    *,
    family: str,
    paper: str,
    alpha: bool = False,
    resolution: int = 224,
    min_resolution: int = 32,
    num_classes: int = 1000,
    in_chans: int = 3,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: enrol a builder under `name`. A name registered twice is an error."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        for key in (name, *aliases):
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"model name {key!r} is already registered")
        _REGISTRY[name] = ModelSpec(
            name=name, family=family, builder=builder, paper=paper, resolution=resolution,
            min_resolution=min_resolution, num_classes=num_classes, in_chans=in_chans,
            mean=tuple(mean), std=tuple(std), has_alpha=alpha, aliases=tuple(aliases),
        )
        for alias in aliases:
            _ALIASES[alias] = name
        return builder

    return decorate


def _load_zoo() -> None:
    import edgecnn.models  # noqa: F401  (importing the package registers every family)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names (aliases excluded) matching a shell-style pattern, sorted."""
    _load_zoo()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    """The spec of a model by name, alias or import path; an unknown name suggests the
    closest ones."""
    if is_import_path(name):
        return _import_spec(name)
    _load_zoo()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(name, [*_REGISTRY, *_ALIASES], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `edgecnn list`"
        raise EdgeCNNError(f"unknown model {name!r}{hint}")
    return _REGISTRY[key]


IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_import_path(name: str) -> bool:
    """`package.module:callable` (a zoo name has no colon)."""
    return isinstance(name, str) and bool(IMPORT_PATH.match(name))


@functools.lru_cache(maxsize=None)  # one import (and one probe build) per path
def _import_spec(path: str) -> ModelSpec:
    """A ModelSpec for a user's model builder: defaults of an ImageNet-style model (224 px,
    3 channels, ImageNet mean/std) that the caller's own values replace."""
    import importlib
    import inspect

    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own code failing
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise EdgeCNNError(f"model {path}: module {module_name!r} does not import "
                           f"({type(exc).__name__}: {first})") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise EdgeCNNError(f"model {path}: {module_name} has no callable {attr!r}")
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        params = {}
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    takes_in_chans = "in_chans" in params or takes_kwargs
    # A width multiplier by either usual name (MobileNet's alpha, torchvision's width_mult):
    # the model then has alpha like a zoo family with one (`edgecnn fit`, `--alpha`).
    width = next((p for p in ("alpha", "width_mult") if p in params), None)
    if "num_classes" not in params and not takes_kwargs:
        raise EdgeCNNError(f"model {path}: the callable must take num_classes")

    def make(**kwargs: Any) -> nn.Module:
        model = builder(**kwargs)
        if not isinstance(model, nn.Module):
            raise EdgeCNNError(f"model {path}: the callable returned a "
                               f"{type(model).__name__}, not an nn.Module")
        return model

    def build(*, num_classes: int, in_chans: int, **kwargs: Any) -> nn.Module:
        if width is not None and "alpha" in kwargs:
            kwargs[width] = kwargs.pop("alpha")
        if takes_in_chans:
            kwargs["in_chans"] = in_chans
        model = make(num_classes=num_classes, **kwargs)
        chans = _first_conv_channels(model)
        if not takes_in_chans and chans is not None and chans != in_chans:
            raise EdgeCNNError(f"model {path} takes {chans} input channels (it has no "
                               f"in_chans argument), not {in_chans}")
        return model

    if takes_in_chans:
        default_chans = params["in_chans"].default if "in_chans" in params else 3
        if not isinstance(default_chans, int) or isinstance(default_chans, bool):
            default_chans = 3
    else:  # the channels are the model's own: read them from one build
        default_chans = _first_conv_channels(make(num_classes=2)) or 3
    return ModelSpec(name=path, family="import path", builder=build,
                     paper=f"user model {path}", min_resolution=1, in_chans=default_chans,
                     has_alpha=width is not None)


def _first_conv_channels(model: nn.Module) -> int | None:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first is None else first.in_channels


def create_model(
    name: str,
    *,
    alpha: float = 1.0,
    num_classes: int | None = None,
    in_chans: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a zoo model.

    alpha: width multiplier (only for families whose paper defines one).
    num_classes / in_chans: default to the model's own (1000 and 3 for ImageNet models,
    10 and 1 for LeNet-5).
    kwargs: family options (e.g. `bypass="simple"` for SqueezeNet, `drop_path=0.5`).
    The returned module carries `.spec` (ModelSpec) and `.config` (the arguments).
    """
    spec = get_spec(name)
    alpha = _check_alpha(spec, alpha)
    num_classes = spec.num_classes if num_classes is None else num_classes
    in_chans = spec.in_chans if in_chans is None else in_chans
    for label, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EdgeCNNError(f"{label} must be a positive integer, got {value!r}")
    build_kwargs = dict(kwargs, num_classes=num_classes, in_chans=in_chans)
    if spec.has_alpha:
        build_kwargs["alpha"] = alpha
    try:
        model = spec.builder(**build_kwargs)
    except TypeError as exc:  # an option the family does not have
        raise EdgeCNNError(f"{spec.name}: {exc}") from None
    model.spec = spec
    model.config = {"name": spec.name, "alpha": alpha, "num_classes": num_classes,
                    "in_chans": in_chans, **kwargs}
    model.register_forward_pre_hook(_InputCheck(spec.name, spec.min_resolution, in_chans))
    return model


def _check_alpha(spec: ModelSpec, alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise EdgeCNNError(f"alpha must be a number, got {alpha!r}")
    if alpha <= 0:
        raise EdgeCNNError(f"alpha must be positive, got {alpha}")
    if not spec.has_alpha and alpha != 1.0:
        raise EdgeCNNError(f"{spec.name} has no width multiplier: alpha must be 1.0, got {alpha}")
    return float(alpha)


class _InputCheck:
    """Forward pre-hook: a clear error for inputs too small (or of the wrong rank/channels)."""

    def __init__(self, name: str, min_resolution: int, in_chans: int) -> None:
        self.name, self.min_resolution, self.in_chans = name, min_resolution, in_chans

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise EdgeCNNError(f"{self.name} expects a (B, C, H, W) tensor, got {shape}")
        _, c, h, w = x.shape
        if isinstance(c, int) and c != self.in_chans:
            raise EdgeCNNError(f"{self.name} expects {self.in_chans} input channels, got {c}")
        if isinstance(h, int) and isinstance(w, int) and min(h, w) < self.min_resolution:
            raise EdgeCNNError(
                f"{self.name} needs inputs of at least {self.min_resolution}x{self.min_resolution}"
                f" pixels, got {h}x{w}"
            )
