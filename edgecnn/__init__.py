"""edgecnn: paper-exact CNNs from definition to an edge device.

The zoo API (`create_model`, `list_models`, `profile_model`, `get_spec`) needs torch and
is loaded lazily, so that `import edgecnn.runtime` on a device never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgeCNNError

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "create_model": "edgecnn.registry",
    "list_models": "edgecnn.registry",
    "get_spec": "edgecnn.registry",
    "ModelSpec": "edgecnn.registry",
    "profile_model": "edgecnn.profile",
    "Profile": "edgecnn.profile",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from edgecnn.profile import Profile, profile_model
    from edgecnn.registry import ModelSpec, create_model, get_spec, list_models


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")


__all__ = ["EdgeCNNError", "__version__", *_LAZY]
