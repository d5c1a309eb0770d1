"""Names a package exports from modules it imports only on first use (PEP 562).

    _LAZY = {"edgecnn.registry": ("create_model", "get_spec")}  # module -> names it defines
    __getattr__ = lazy_getattr(__name__, _LAZY)
    __all__ = lazy_names(_LAZY)

Used where the defining module needs torch or an optional runtime, so that importing the
package (`import edgecnn.runtime` on a device) stays torch-free and fast. Torch-free itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_getattr(package: str, modules: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` that imports the module defining a name on
    first access and caches the value on the package, so later lookups are plain reads."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def lazy_names(modules: Mapping[str, Sequence[str]]) -> list[str]:
    """Every name of `modules`, for `__all__`."""
    return [name for names in modules.values() for name in names]
