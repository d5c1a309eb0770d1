"""Names a package exports from modules it imports only on first use (PEP 562).

    _LAZY = {"create_model": "edgecnn.registry"}   # name -> module that defines it
    __getattr__ = lazy_getattr(__name__, _LAZY)

Used where the defining module needs torch or an optional runtime, so that importing the
package (`import edgecnn.runtime` on a device) stays torch-free and fast. Torch-free itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package` that imports `names[name]` on first access
    and caches the value on the package, so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
