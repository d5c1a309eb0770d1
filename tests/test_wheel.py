"""The wheel works as users install it: fresh virtual environments, outside the checkout.

One wheel is built from the source files (session fixture), then installed twice, each into
a fresh virtual environment in a scratch directory (pip's cache serves the dependencies):
- the base install, `pip install edgecnn` (numpy, ONNX Runtime, Pillow): it predicts and
  benchmarks an artifact, and every torch-side command says in one line what to install;
- the torch extra: torch 2.13.0 through constraints.txt first, then `edgecnn[torch,openvino]`:
  it exports with the packaged target recipes (int8 from a user's checkpoint, calibrated on
  digits) and starts the pipeline on its packaged default recipe (up to its first stage; the
  whole pipeline runs, killed in every stage, in tests/test_pipeline.py).
The device kit (deploy/, installed as edgecnn.deploy) is in the wheel: the base install's
`edgecnn kit` finds its scripts in site-packages, and `edgecnn app` scores a folder there.
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
import zipfile
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
MOBILENET = ("mobilenet", "--alpha", "0.25", "--resolution", "32")
INSTALL = ("-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
           "-c", str(ROOT / "constraints.txt"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return dict(env, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def run_in(venv: Path, program: str, *args: str, cwd: Path, ok: bool = True,
           timeout: float = 300, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """Run `program` (edgecnn, python, pip) of `venv` in `cwd`; with ok, it must succeed.
    `pythonpath`: where the user's own modules live (an import-path model)."""
    env = _env() if pythonpath is None else dict(_env(), PYTHONPATH=str(pythonpath))
    proc = subprocess.run([str(venv / "bin" / program), *args], cwd=cwd, env=env,
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
    # next wheel. These are the files a wheel is made of (pyproject.toml, setup.py; deploy/
    # becomes edgecnn.deploy only when it is there, so a copy without it builds a wheel
    # without the device kit).
    src = scratch / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("edgecnn", "export", "deploy"):
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


def test_wheel_carries_the_app_and_the_kit(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("edgecnn/app.py", "edgecnn/kit.py", "edgecnn/deploy/__init__.py",
                 "edgecnn/deploy/app.py", "edgecnn/deploy/README.md",
                 "edgecnn/deploy/jetson/setup.sh", "edgecnn/deploy/jetson/README.md",
                 "edgecnn/deploy/nano/trtexec_bench.sh", "edgecnn/deploy/nano/trtexec_report.py",
                 "edgecnn/deploy/arm64/setup_userland.sh", "edgecnn/deploy/arm64/infer.py"):
        assert path in names, path


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


KIT = (("jetson", "setup.sh"), ("jetson", "run_benchmark.sh"), ("nano", "trtexec_bench.sh"),
       ("nano", "trtexec_report.py"), ("arm64", "setup_userland.sh"), ("arm64", "infer.py"))


@pytest.mark.slow
def test_base_install_carries_the_device_kit_and_runs_the_app(base_venv: Path, artifact: Path,
                                                              work: Path) -> None:
    """The device install's `edgecnn kit` prints folders in its site-packages that hold the
    Jetson, Nano and arm64 scripts; `edgecnn app`, `python -m edgecnn.app` and the kit's
    app.py example score class folders with the artifact the wheel exported."""
    kit = json.loads(run_in(base_venv, "edgecnn", "kit", "--json", cwd=work).stdout)
    path = Path(kit["path"])
    assert path.is_relative_to(base_venv) and "site-packages" in path.parts, path
    assert not path.resolve().is_relative_to(ROOT)
    for sub, script in KIT:
        assert Path(kit["folders"][sub]) == path / sub
        assert (path / sub / script).is_file() and (path / sub / "README.md").is_file()
        if script.endswith(".sh"):  # the whole file arrived: bash parses it
            subprocess.run(["bash", "-n", str(path / sub / script)], check=True, timeout=30)
    lines = run_in(base_venv, "edgecnn", "kit", cwd=work).stdout.splitlines()
    assert lines[0] == str(path)
    assert {line.split()[0] for line in lines[1:]} >= {"jetson/", "nano/", "arm64/"}
    rng = np.random.default_rng(0)
    for cls in ("3", "7"):  # the artifact's classes are 0..999: these folders are classes
        (work / "photos" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(
                work / "photos" / cls / f"{i}.png")
    out = run_in(base_venv, "edgecnn", "app", str(artifact), "--images", "photos", "--topk",
                 "1", cwd=work).stdout
    assert "4 images" in out and "/4) for model.onnx" in out, out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  ")] == ["3", "7"]
    for program in (("-m", "edgecnn.app"), (str(path / "app.py"),)):
        proc = run_in(base_venv, "python", *program, str(artifact), "--images", "photos",
                      "--json", cwd=work)
        report = json.loads(proc.stdout)
        assert report["images"] == 4 and report["accuracy"]["images"] == 4, report
        assert report["accuracy"]["stage"].startswith("model.onnx")


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
                ("pipeline",), ("bench", "mobilenet"), ("bench", "ARTIFACT", "--runtime", "torch"),
                ("fit", "mobilenet", "--data", "digits", "--latency-ms", "1")]


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
    # every block int8: TensorRT's int8 is timed on its device, so no CPU search puts
    # blocks back in float (an fp32 graph in model.int8.onnx would fail here)
    fp32, int8 = (int8_layers(work / "trt" / f) for f in ("model.onnx", "model.int8.onnx"))
    assert fp32 == [] and int8 == matmul_layers(work / "trt" / "model.int8.onnx") != []


EIGHT_BIT = ("INT8", "UINT8")
INTEGER_KERNELS = ("QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul")


def matmul_layers(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node
            if n.op_type in ("Conv", "Gemm", "MatMul")]


def int8_layers(path: Path) -> list[str]:
    """The layers of an ONNX file that compute in 8-bit integers: integer kernels
    (QLinearConv, ConvInteger, MatMulInteger, QLinearMatMul), or a Conv/Gemm/MatMul whose
    input and weight both come through DequantizeLinear from 8-bit values (an int8/uint8
    initializer, or a QuantizeLinear to int8/uint8): a Q/DQ graph, which ONNX Runtime and
    TensorRT run in integer kernels. An fp32 graph has none, whatever its file size."""
    import onnx

    eight_bit = {getattr(onnx.TensorProto, t) for t in EIGHT_BIT}
    graph = onnx.load(str(path)).graph
    dtype = {t.name: t.data_type for t in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}

    def dequantized_8bit(name: str) -> bool:
        dq = made_by.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return False
        if dq.input[0] in dtype:  # a quantized weight
            return dtype[dq.input[0]] in eight_bit
        q = made_by.get(dq.input[0])  # an activation, or a weight quantized at run time
        return q is not None and q.op_type == "QuantizeLinear" and (
            len(q.input) < 3 or dtype.get(q.input[2]) in eight_bit)  # no zero point: uint8

    return [n.name for n in graph.node if n.op_type in INTEGER_KERNELS or (
        n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1
        and dequantized_8bit(n.input[0]) and dequantized_8bit(n.input[1]))]


@pytest.mark.slow
def test_torch_extra_benchmarks_the_artifact(torch_venv: Path, artifact: Path,
                                             work: Path) -> None:
    proc = run_in(torch_venv, "edgecnn", "bench", str(artifact), "--runtime",
                  "onnxruntime,openvino", "--iters", "5", "--rounds", "1", "--warmup", "1",
                  "--format", "json", cwd=work)
    runtimes = {r["runtime"] for r in json.loads(proc.stdout)["records"]}
    assert runtimes == {"onnxruntime", "openvino"}


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


# A user's own code, written into the user's directory: not edgecnn's, not the checkout's.
USER_NET = """\
from torch import nn


def tiny_cnn(num_classes, in_chans=3):
    return nn.Sequential(
        nn.Conv2d(in_chans, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))
"""
PLAIN_EXPORT = """\
import torch
from mynets import tiny_cnn

net = torch.nn.Sequential(tiny_cnn(4), torch.nn.Softmax(dim=1)).eval()
torch.onnx.export(net, (torch.rand(1, 3, 24, 24),), "their.onnx", dynamo=False,
                  input_names=["image"], output_names=["prob"])
"""


@pytest.mark.slow
def test_foreign_onnx_file_exports_in_the_extra_and_predicts_in_the_base(
        torch_venv: Path, base_venv: Path, image: Path, work: Path) -> None:
    """An ONNX file from plain torch.onnx (ends in Softmax, no edgecnn metadata): exported
    with --int8 in the torch install, then run by the base install with its labels."""
    (work / "mynets.py").write_text(USER_NET)
    (work / "plain_export.py").write_text(PLAIN_EXPORT)
    run_in(torch_venv, "python", "plain_export.py", cwd=work, pythonpath=work)
    (work / "labels.txt").write_text("cat\ndog\nbird\nfish\n")
    flags = ("--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--labels", "labels.txt")
    proc = run_in(base_venv, "edgecnn", "predict", "their.onnx", str(image), *flags, "--json",
                  cwd=work)  # the file as it is, in the device install
    direct = json.loads(proc.stdout)
    run_in(torch_venv, "edgecnn", "export", "their.onnx", *flags, "--int8", "--calib-data",
           "random", "--calib-samples", "16", "-o", "theirs", cwd=work)
    report = json.loads((work / "theirs" / "export.json").read_text())
    assert report["options"]["source"]["kind"] == "OnnxSource"
    proc = run_in(base_venv, "edgecnn", "predict", "theirs", str(image), "--json", cwd=work)
    exported = json.loads(proc.stdout)
    assert _top1(exported) in ("cat", "dog", "bird", "fish")  # the labels file's names
    assert _top1(exported) == _top1(direct)  # one softmax, one preprocessing: same answer


def _top1(predictions: object) -> str:
    """The first label in predict's JSON, wherever the record keeps it."""
    text = json.dumps(predictions)
    found = re.search(r'"label": "([^"]+)"', text)
    assert found, text[:500]
    return found.group(1)


@pytest.mark.slow
def test_import_path_model_trains_prunes_and_predicts(torch_venv: Path, base_venv: Path,
                                                      image: Path, work: Path) -> None:
    """`mynets:tiny_cnn` from the user's directory: train, export --prune 0.5 with a
    fine-tuning epoch and int8 calibrated on digits from the checkpoint alone, predict in the
    base install."""
    (work / "mynets.py").write_text(USER_NET)
    # the console script finds ./mynets.py as `python -m edgecnn` would: no PYTHONPATH
    run_in(torch_venv, "edgecnn", "train", "mynets:tiny_cnn", "--data", "digits",
           "--resolution", "16", "--epochs", "1", "--out", "run", cwd=work)
    export = run_in(torch_venv, "edgecnn", "export", "run/best.pt", "--prune", "0.5",
                    "--finetune-epochs", "1", "--int8", "--calib-data", "digits", "-o", "mine",
                    cwd=work, pythonpath=work)
    report = json.loads((work / "mine" / "export.json").read_text())
    assert report["options"]["source"]["kind"] == "CheckpointSource"
    assert report["macs"]["after"] <= 0.5 * report["macs"]["before"]  # pruned: the user's
    # own module through torch-pruning's dependency graph, from the installed packages
    assert report["pruning"]["top1_after"] is not None  # fine-tuned on the run's data set
    unpruned = {u["layer"]: u["reason"] for u in report["pruning"]["unpruned"]}
    assert "output layer" in unpruned.get("8", ""), unpruned  # the Linear keeps its classes
    assert "not pruned: 8" in export.stdout  # in the summary, not only in the file
    assert report["int8"]["written"] and report["data"]["held_out_images"] > 0
    layers = report["int8"]["layers"]  # int8 arithmetic, from the wheel's quantizer
    assert any(layer["precision"] == "int8" for layer in layers), layers
    proc = run_in(base_venv, "edgecnn", "predict", "mine", str(image), "--json", cwd=work)
    assert "photo.jpg" in proc.stdout
    elsewhere = work / "elsewhere"  # from another directory, without PYTHONPATH: the module
    elsewhere.mkdir()  # is not on the path, and the error is one line naming it
    moved = run_in(torch_venv, "edgecnn", "export", "../run/best.pt", "-o", "again",
                   cwd=elsewhere, ok=False)
    assert moved.returncode == 2 and "mynets" in moved.stderr
    assert "Traceback" not in moved.stderr and not (elsewhere / "again").exists()
