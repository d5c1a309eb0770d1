"""The import graph runs one way, and the torch-free parts stay torch-free.

layers -> models -> (train, export); runtime imports neither torch nor the zoo; nothing
imports the CLI. Checked on the source (static imports) so that a lazy import inside a
function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgecnn"

# package area -> areas it must never import
FORBIDDEN = {
    "layers": ("edgecnn.models", "edgecnn.train", "edgecnn.export", "edgecnn.runtime",
               "edgecnn.bench", "edgecnn.cli", "edgecnn.data"),
    "models": ("edgecnn.train", "edgecnn.export", "edgecnn.runtime", "edgecnn.bench",
               "edgecnn.cli"),
    "runtime": ("torch", "edgecnn.models", "edgecnn.layers", "edgecnn.registry",
                "edgecnn.profile", "edgecnn.train", "edgecnn.export", "edgecnn.checkpoint",
                "edgecnn.cli", "edgecnn.bench", "edgecnn.torch_runner"),
    "train": ("edgecnn.export", "edgecnn.runtime", "edgecnn.bench", "edgecnn.cli"),
    "export": ("edgecnn.bench", "edgecnn.cli"),
    "bench": ("edgecnn.cli",),
    "data": ("edgecnn.models", "edgecnn.train", "edgecnn.export", "edgecnn.cli"),
}
# ... except these: export times its variants with the bench's harness (one timing loop).
ALLOWED = {"export": ("edgecnn.bench.harness", "edgecnn.bench.timing")}
TORCH_FREE_MODULES = ("errors.py", "metadata.py", "tables.py", "__init__.py")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def area_files(area: str) -> list[Path]:
    target = PKG / area
    return sorted(target.rglob("*.py")) if target.is_dir() else []


@pytest.mark.parametrize("area", sorted(FORBIDDEN))
def test_import_graph_runs_one_way(area: str) -> None:
    bad = []
    for path in area_files(area):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[area]) and \
                    name not in ALLOWED.get(area, ()):
                bad.append(f"{path.relative_to(PKG.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_cli() -> None:
    offenders = [str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py")
                 if "cli" not in p.relative_to(PKG).parts and p.name != "__main__.py"
                 and any(n == "edgecnn.cli" or n.startswith("edgecnn.cli.")
                         for n in imports_of(p))]
    assert not offenders, offenders


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_shared_modules_do_not_import_torch(module: str) -> None:
    names = imports_of(PKG / module)
    assert not any(n == "torch" or n.startswith("torch.") for n in names), names


def test_importing_edgecnn_does_not_import_torch() -> None:
    code = ("import sys, edgecnn, edgecnn.errors, edgecnn.metadata, edgecnn.tables; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
