"""The zoo: one module per family; importing this package registers every one of them.

Modules are discovered, not listed, so a new family file is enrolled (and picked up by the
registry-wide tests) just by being here. Modules starting with "_" are helpers.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
