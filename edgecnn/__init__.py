"""edgecnn: paper-exact CNNs from definition to an edge device.

The zoo API (`create_model`, `list_models`, `profile_model`, `get_spec`) needs torch and
is loaded lazily, so that `import edgecnn.runtime` on a device never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecnn.errors import EdgeCNNError
from edgecnn.lazy import lazy_getattr, lazy_names

__version__ = "0.1.0"

# module -> the names it defines; imported on first attribute access (PEP 562).
_LAZY = {
    "edgecnn.registry": ("create_model", "list_models", "get_spec", "ModelSpec"),
    "edgecnn.profile": ("profile_model", "Profile"),
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from edgecnn.profile import Profile, profile_model
    from edgecnn.registry import ModelSpec, create_model, get_spec, list_models

__getattr__ = lazy_getattr(__name__, _LAZY)
__all__ = ["EdgeCNNError", "__version__", *lazy_names(_LAZY)]
