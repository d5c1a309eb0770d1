"""The import graph runs one way, has no cycles, and the torch-free parts stay torch-free.

Every module of the package belongs to an area (a subpackage, or a top-level module such as
`registry`), and every area is listed in LAYERS with the areas it may import:
layers -> models -> (train, export); runtime imports neither torch nor the zoo; timing (the one
harness) sits on the runtime, below export and bench, which both time with it; nothing
imports the CLI. Checked on the source (static imports), so that a lazy
import inside a function counts too; a new module or subpackage fails the test until it is
given a place here.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgecnn"

# The shared base: torch-free, project-agnostic modules everything may use.
BASE = ("errors", "lazy", "fileio", "host", "metadata", "tables", "plotting", "progress")
ZOO = ("layers", "models", "registry", "profile")
# area -> the other areas it may import ("__init__" is `import edgecnn` itself)
LAYERS: dict[str, tuple[str, ...]] = {
    "errors": (),
    "lazy": (),
    "fileio": ("errors",),
    "host": (),
    "progress": (),  # tqdm bars and tickers, optional (tqdm is in the torch extra)
    "metadata": ("errors",),
    "tables": ("errors",),
    "plotting": ("fileio",),  # matplotlib helpers (label placement, log axes, overlap check)
    "__init__": ("errors", "lazy", "registry", "profile"),  # the zoo API, lazily
    "runtime": BASE,
    "app": (*BASE, "runtime"),  # the device app: torch-free, on the runtime alone
    "kit": BASE,  # where the installed device kit (edgecnn.deploy) is
    "data": BASE,
    "layers": BASE,
    "registry": (*BASE, "models"),  # model discovery (see ALLOWED_EDGES)
    "models": (*BASE, "layers", "registry"),
    "profile": (*BASE, "registry"),
    "checkpoint": (*BASE, "registry"),
    "train": (*BASE, *ZOO, "__init__", "data", "checkpoint"),
    # the timing harness: runners through the runtime's Runner interface, nothing above it
    "timing": (*BASE, "runtime"),
    "export": (*BASE, *ZOO, "__init__", "data", "checkpoint", "train", "runtime", "timing"),
    "bench": (*BASE, *ZOO, "__init__", "data", "checkpoint", "train", "export", "runtime",
              "timing"),
    "pipeline": (*BASE, *ZOO, "__init__", "data", "checkpoint", "train", "export", "runtime",
                 "timing", "bench"),
    # `edgecnn tune` on a device: torch-free, through export's torch-free int8 modules
    # (ALLOWED_MODULES) and the timing harness
    "tune": (*BASE, "__init__", "runtime", "timing"),
    # --remote: OpenSSH's client and a small agent on the device; records come back as the
    # timing harness's own
    "remote": (*BASE, "__init__", "runtime", "timing"),
    # `edgecnn fit`: trains (train), exports and prunes (export), times (timing), tunes
    # (tune) and plots with bench's Pareto front
    "fit": (*BASE, *ZOO, "__init__", "data", "checkpoint", "train", "export", "runtime",
            "timing", "bench", "tune"),
    "cli": (*BASE, *ZOO, "__init__", "data", "checkpoint", "train", "export", "runtime",
            "timing", "bench", "pipeline", "tune", "remote", "app", "kit", "fit"),
    "__main__": ("cli",),
}
# Modules an area may import beyond LAYERS, each for a reason.
# Data decodes files with the runtime's one preprocessing (torch-free; it imports nothing
# of data), so that training's evaluation sees the pixels a device app feeds.
# Tune rewrites and times int8 graphs with export's int8 modules, which import neither
# torch nor the zoo (the dynamic check below imports them without torch).
ALLOWED_MODULES = {"data": ("edgecnn.runtime.preprocess",),
                   "tune": ("edgecnn.export.decision", "edgecnn.export.mixed",
                            "edgecnn.export.placement", "edgecnn.export.merge",
                            "edgecnn.export.ov_profile")}
TORCH_FREE = ("errors", "lazy", "fileio", "host", "metadata", "tables", "__init__", "runtime",
              "timing", "tune", "remote")

# Imports the source does not spell out: edgecnn/models/__init__.py imports every family
# module through pkgutil (modules starting with "_" are helpers it skips).
DYNAMIC_IMPORTS = {"edgecnn.models": sorted(
    f"edgecnn.models.{p.stem}" for p in (PKG / "models").glob("*.py")
    if not p.stem.startswith("_"))}
# Edges left out of the cycle check, each for a reason. The registry imports edgecnn.models
# on first use so that every family registers itself, and each family imports the registry
# to do so: that cycle is the design (one registry, families discovered, not listed).
ALLOWED_EDGES = {("edgecnn.registry", "edgecnn.models")}
# Cycles tolerated for now, each exactly as it is (none: a cycle is fixed, not listed).
ALLOWED_CYCLES: list[set[str]] = []


# --- the checker, on any package (the tests below also run it on ones they write) -----------

def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package directory `root`."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(path: Path, module: str, *, executed_only: bool = False) -> set[str]:
    """Every dotted name the file imports, relative imports resolved (`from m import x` gives
    m.x: module x of package m, or name x of module m; see resolve). executed_only leaves
    out `if TYPE_CHECKING:` blocks, which never run."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and executed_only and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names.update(f"{base}.{a.name}" for a in node.names)  # a module, or in one
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def import_graph(root: Path, package: str,
                 dynamic: dict[str, list[str]] | None = None) -> dict[str, set[str]]:
    """module -> the package's modules it imports when it runs (edges to itself left out)."""
    files = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set((dynamic or {}).get(module, ()))
        for name in imported_names(path, module, executed_only=True):
            target = resolve(name, files)
            if target:
                targets.add(target)
        graph[module] = targets - {module}
    return graph


def resolve(name: str, files: dict[str, Path]) -> str:
    """The module an imported name lives in ("pkg.mod.attr" -> "pkg.mod"); "" if outside."""
    while name and name not in files:
        name = name.rpartition(".")[0]
    return name


def find_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(cycles, key=sorted)


def area_of(module: str) -> str:
    """edgecnn.export.api -> export; edgecnn.registry -> registry; edgecnn -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


# --- the package's own structure ---------------------------------------------------------------

FILES = module_files(PKG, "edgecnn")


def test_every_module_has_a_place_in_the_layers() -> None:
    unplaced = sorted({area_of(m) for m in FILES} - set(LAYERS))
    assert not unplaced, f"areas with no entry in LAYERS: {unplaced}"
    assert {"registry", "checkpoint", "profile", "fileio"} <= {area_of(m) for m in FILES}


@pytest.mark.parametrize("area", sorted(LAYERS))
def test_import_graph_runs_one_way(area: str) -> None:
    allowed = {area, *LAYERS[area]}
    bad = []
    for module, path in FILES.items():
        if area_of(module) != area:
            continue
        for name in imported_names(path, module):
            target = resolve(name, FILES)
            if target and area_of(target) not in allowed \
                    and target not in ALLOWED_MODULES.get(area, ()):
                bad.append(f"{path.relative_to(PKG.parent)} imports {target}")
    assert not bad, "\n".join(sorted(bad))


@pytest.mark.parametrize("area", TORCH_FREE)
def test_torch_free_areas_do_not_import_torch(area: str) -> None:
    bad = [f"{path.relative_to(PKG.parent)} imports {name}"
           for module, path in FILES.items() if area_of(module) == area
           for name in imported_names(path, module) if name.split(".")[0] == "torch"]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    graph = import_graph(PKG, "edgecnn", DYNAMIC_IMPORTS)
    for src, dst in ALLOWED_EDGES:
        assert dst in graph[src], f"{src} no longer imports {dst}: drop it from ALLOWED_EDGES"
        graph[src].discard(dst)
    cycles = find_cycles(graph)
    stale = [c for c in ALLOWED_CYCLES if c not in cycles]
    assert not stale, f"no longer cycles, drop them from ALLOWED_CYCLES: {stale}"
    unexpected = [sorted(c) for c in cycles if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"


def test_the_registry_discovery_is_the_cycle_it_is_said_to_be() -> None:
    # without the allowed edge the registry and every family form one cycle, and only that
    cycles = find_cycles(import_graph(PKG, "edgecnn", DYNAMIC_IMPORTS))
    registry = [c for c in cycles if "edgecnn.registry" in c]
    assert registry == [{"edgecnn.registry", "edgecnn.models", *DYNAMIC_IMPORTS["edgecnn.models"]}]


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "plant" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "plant"


def test_a_planted_cycle_is_found(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from plant.b import helper\n",
        "sub/__init__.py": "",
        # a lazy, relative import inside a function closes the cycle: it counts
        "sub/c.py": "def f():\n    from .. import a\n    return a\n",
        "b.py": "import plant.sub.c\n\ndef helper():\n    return plant.sub.c.f()\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import plant.a\n",
    })
    graph = import_graph(pkg, "plant")
    assert graph["plant.sub.c"] == {"plant.a"}  # `from .. import a`: the module plant.a
    assert graph["plant.d"] == set()  # type-checking imports never run
    assert find_cycles(graph) == [{"plant.a", "plant.b", "plant.sub.c"}]


def test_a_package_without_cycles_passes(tmp_path: Path) -> None:
    pkg = _write_package(tmp_path, {
        "__init__.py": "from plant.a import x\n",
        "a.py": "x = 1\n",
        "b.py": "from plant import a\nfrom plant.a import x\n",
    })
    assert find_cycles(import_graph(pkg, "plant")) == []


# --- torch stays out of the torch-free imports -------------------------------------------------

def test_importing_the_torch_free_parts_does_not_import_torch() -> None:
    code = ("import sys, edgecnn, edgecnn.errors, edgecnn.metadata, edgecnn.tables, "
            "edgecnn.fileio, edgecnn.runtime, edgecnn.data, edgecnn.export, edgecnn.train, "
            "edgecnn.bench, edgecnn.export.targets, edgecnn.train.config, "
            "edgecnn.timing.harness, edgecnn.tune.run, edgecnn.export.mixed, "
            "edgecnn.export.placement, edgecnn.export.decision, edgecnn.export.quantize, "
            "edgecnn.export.merge, edgecnn.export.ov_profile; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


# --- ONNX Runtime sessions are made in one place --------------------------------------------

def session_constructions(path: Path) -> list[int]:
    """Lines of the file that name ONNX Runtime's InferenceSession in code (a call, an alias
    or an import of it; strings and comments that mention it do not count)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        named = ((isinstance(node, ast.Attribute) and node.attr == "InferenceSession")
                 or (isinstance(node, ast.Name) and node.id == "InferenceSession")
                 or (isinstance(node, ast.alias) and node.name == "InferenceSession"))
        if named:
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_runtime_makes_onnx_runtime_sessions() -> None:
    # Session options (threads, spinning, profiling, the optimized graph) live in one place,
    # OrtRunner; a session built elsewhere measures under settings no runner reports.
    bad = [f"{path.relative_to(PKG.parent)}:{line}" for module, path in FILES.items()
           if area_of(module) != "runtime" for line in session_constructions(path)]
    assert not bad, "InferenceSession outside edgecnn/runtime/ (use OrtRunner):\n" + "\n".join(bad)


def test_a_planted_session_is_found(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text('"""InferenceSession( in a docstring is no session."""\n'
                    "import onnxruntime as ort\n"
                    "from onnxruntime import InferenceSession as S\n"
                    "s = ort.InferenceSession(b'')\n", encoding="utf-8")
    assert session_constructions(path) == [3, 4]


@pytest.mark.parametrize("package", ["edgecnn", "edgecnn.data", "edgecnn.export",
                                     "edgecnn.runtime", "edgecnn.train"])
def test_lazy_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        module.nope  # noqa: B018
