"""The wheel works as users install it: fresh virtual environments, outside the checkout.

One wheel is built from the source files (session fixture), then installed twice, each into
a fresh virtual environment in a scratch directory (pip's cache serves the dependencies):
- the base install, `pip install edgecnn` (numpy, ONNX Runtime, Pillow): it predicts and
  benchmarks an artifact, and every torch-side command says in one line what to install;
- the torch extra: torch 2.13.0 through constraints.txt first, then `edgecnn[torch,openvino]`:
  it exports with the packaged target recipes and runs the pipeline (a quick recipe, and the
  packaged default recipe up to its first stage).
Every command runs from a scratch directory, so nothing can come from the checkout.
`run_in(venv, "edgecnn", ...)` runs a program of a venv there; add new entry points with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.cli.main import TORCH_COMMANDS, TORCH_SIDE
from tests.conftest import ROOT

# One worker builds and installs (make test runs `-n 2 --dist loadgroup`).
pytestmark = pytest.mark.xdist_group("wheel")
QUICK_RECIPE = Path(__file__).with_name("pipeline_quick.yaml")
MOBILENET = ("mobilenet", "--alpha", "0.25", "--resolution", "32")
INSTALL = ("-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
           "-c", str(ROOT / "constraints.txt"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return dict(env, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def run_in(venv: Path, program: str, *args: str, cwd: Path, ok: bool = True,
           timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `program` (edgecnn, python, pip) of `venv` in `cwd`; with ok, it must succeed."""
    proc = subprocess.run([str(venv / "bin" / program), *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    if ok and proc.returncode != 0:
        pytest.fail(f"{program} {' '.join(args)} -> exit {proc.returncode}\n"
                    f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    return proc


def _make_venv(root: Path, *installs: tuple[str, ...]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, env=_env())
    for args in installs:
        run_in(root, "python", *INSTALL, *args, cwd=root, timeout=900)
    return root


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch directory outside the checkout; the venvs in it are removed afterwards."""
    path = tmp_path_factory.mktemp("wheel")
    assert not path.resolve().is_relative_to(ROOT)
    yield path
    # About 1.5 GB of small files, removed in the background: on a busy disk deleting them
    # takes minutes, and nothing needs to wait for it.
    subprocess.Popen(["rm", "-rf", str(path)], start_new_session=True)


@pytest.fixture(scope="session")
def wheel(scratch: Path) -> Path:
    # Built from a copy: an in-tree build leaves build/, whose stale files would leak into the
    # next wheel. These are the files a wheel is made of (pyproject.toml, setup.py).
    src = scratch / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("edgecnn", "export"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = scratch / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-w", str(out), str(src)],
                   check=True, env=_env(), timeout=600)
    (path,) = out.glob("edgecnn-*.whl")
    return path


@pytest.fixture(scope="session")
def base_venv(scratch: Path, wheel: Path) -> Path:
    return _make_venv(scratch / "base", (str(wheel),))


@pytest.fixture(scope="session")
def torch_venv(scratch: Path, wheel: Path) -> Path:
    return _make_venv(scratch / "torch", ("torch==2.13.0",), (f"{wheel}[torch,openvino]",))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The user's directory: empty, outside the checkout."""
    return tmp_path


@pytest.fixture(scope="session")
def artifact(scratch: Path, torch_venv: Path) -> Path:
    """MobileNet 0.25 at 32 px exported from the wheel, with the default target."""
    run_in(torch_venv, "edgecnn", "export", *MOBILENET, "-o", "mnv1", cwd=scratch)
    return scratch / "mnv1"


@pytest.fixture(scope="session")
def image(scratch: Path) -> Path:
    path = scratch / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(path)
    return path


def test_torch_side_names_cover_the_torch_extra() -> None:
    """The base-install guard knows every module the [torch] extra adds."""
    extra = {re.match(r"[A-Za-z0-9_.-]+", r).group().lower().replace("_", "-")
             for r in requires("edgecnn") or () if re.search(r"extra == .torch.", r)}
    modules = {dist.lower().replace("_", "-"): mods for dist, mods in _modules_by_dist().items()}
    assert extra and all(set(modules[d]) & set(TORCH_SIDE) for d in extra), extra
    assert all(any(m in modules[d] for d in extra) for m in TORCH_SIDE)


def _modules_by_dist() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            out.setdefault(dist, []).append(module)
    return out


@pytest.mark.slow
def test_wheel_carries_the_recipes_and_runs_from_site_packages(torch_venv: Path,
                                                               work: Path) -> None:
    proc = run_in(torch_venv, "python", "-c", "import edgecnn, edgecnn.export.targets as t; "
                  "print(edgecnn.__file__); print(','.join(t.list_targets()))", cwd=work)
    where, targets = proc.stdout.split()
    assert Path(where).is_relative_to(torch_venv) and not Path(where).is_relative_to(ROOT)
    assert set(targets.split(",")) >= {"cpu-x86", "cpu-arm", "tensorrt", "jetson-orin"}


@pytest.mark.slow
def test_base_install_predicts_and_benchmarks_an_artifact(base_venv: Path, artifact: Path,
                                                          image: Path, work: Path) -> None:
    run_in(base_venv, "python", "-c", "import importlib.util as u; "
           "assert u.find_spec('torch') is None and u.find_spec('onnx') is None", cwd=work)
    proc = run_in(base_venv, "edgecnn", "predict", str(artifact), str(image), "--json",
                  cwd=work)
    assert "photo.jpg" in proc.stdout
    proc = run_in(base_venv, "edgecnn", "bench", str(artifact), "--iters", "5", "--rounds",
                  "1", "--warmup", "1", "--format", "json", cwd=work)
    records = json.loads(proc.stdout)["records"]
    assert [(r["runtime"], r["precision"]) for r in records] == [("onnxruntime", "fp32")]


PREDICT = """\
import sys
from edgecnn.runtime import load
(p,) = load(sys.argv[1], runtime="onnxruntime").predict([sys.argv[2]], topk=3)
assert len(p.labels) == 3 and 0 < sum(p.probs) <= 1 + 1e-6, p
side = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxscript")
              or m.startswith(("edgecnn.models", "edgecnn.export", "edgecnn.registry")))
print("imported:", side)
"""


@pytest.mark.slow
@pytest.mark.parametrize("install", ["base", "torch"])
def test_runtime_predicts_without_importing_torch(install: str, request: pytest.FixtureRequest,
                                                  artifact: Path, image: Path,
                                                  work: Path) -> None:
    """Even where torch is installed, the runtime's import and prediction never touch it."""
    venv = request.getfixturevalue(f"{install}_venv")
    proc = run_in(venv, "python", "-c", PREDICT, str(artifact), str(image), cwd=work)
    assert proc.stdout.strip().endswith("imported: []"), proc.stdout


BASE_REFUSES = [("list",), ("info", "mobilenet"), ("train", "lenet5", "--data", "digits"),
                ("eval", "best.pt"), ("export", *MOBILENET), ("sweep", "mobilenet"),
                ("pipeline",), ("bench", "mobilenet"), ("bench", "ARTIFACT", "--runtime", "torch")]


def test_every_torch_command_is_tried_in_the_base_install() -> None:
    assert {args[0] for args in BASE_REFUSES} == {*TORCH_COMMANDS, "bench"}


@pytest.mark.slow
@pytest.mark.parametrize("args", BASE_REFUSES, ids=" ".join)
def test_base_install_torch_side_is_one_line_exit_2(base_venv: Path, artifact: Path,
                                                   work: Path, args: tuple[str, ...]) -> None:
    args = tuple(str(artifact) if a == "ARTIFACT" else a for a in args)
    proc = run_in(base_venv, "edgecnn", *args, cwd=work, ok=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and 'pip install "edgecnn[torch]"' in proc.stderr
    assert list(work.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_torch_extra_exports_for_tensorrt_with_int8(torch_venv: Path, artifact: Path,
                                                    work: Path) -> None:
    assert json.loads((artifact / "export.json").read_text())["target"]["name"] == "cpu-x86"
    run_in(torch_venv, "edgecnn", "export", *MOBILENET, "--target", "tensorrt", "--int8",
           "--calib-data", "random", "--calib-samples", "16", "-o", "trt", cwd=work)
    report = json.loads((work / "trt" / "export.json").read_text())
    assert report["target"]["name"] == "tensorrt"
    assert report["target"]["source"].startswith(str(torch_venv))  # the packaged recipe
    assert (work / "trt" / "model.int8.onnx").stat().st_size > 0


@pytest.mark.slow
def test_torch_extra_benchmarks_the_artifact(torch_venv: Path, artifact: Path,
                                             work: Path) -> None:
    proc = run_in(torch_venv, "edgecnn", "bench", str(artifact), "--runtime",
                  "onnxruntime,openvino", "--iters", "5", "--rounds", "1", "--warmup", "1",
                  "--format", "json", cwd=work)
    runtimes = {r["runtime"] for r in json.loads(proc.stdout)["records"]}
    assert runtimes == {"onnxruntime", "openvino"}


@pytest.mark.slow
def test_torch_extra_runs_the_pipeline(torch_venv: Path, work: Path) -> None:
    shutil.copy(QUICK_RECIPE, work / "quick.yaml")
    proc = run_in(torch_venv, "edgecnn", "pipeline", "quick.yaml", cwd=work, timeout=600)
    assert "ONNX Runtime int8" in proc.stdout
    assert (work / "runs" / "pipeline-quick" / "report.md").is_file()


@pytest.mark.slow
def test_pipeline_without_argument_runs_the_packaged_default(torch_venv: Path,
                                                             work: Path) -> None:
    """Started from an empty directory, it reads the packaged recipe (stopped at training)."""
    proc = subprocess.Popen([str(torch_venv / "bin" / "edgecnn"), "pipeline"], cwd=work,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = next((line for line in proc.stderr if line.startswith("train:")), "")
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith("train: training mobilenet alpha 0.5 at 32 px on mnist5k"), first
    assert (work / "runs" / "pipeline-pipeline").is_dir()
