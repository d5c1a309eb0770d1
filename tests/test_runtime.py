"""The torch-free runtime on real artifacts: ONNX Runtime and OpenVINO, images from disk,
the `edgecnn predict` command and the deploy app, in real subprocesses where it matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime import Preprocess, load, read_onnx
from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
from edgecnn.runtime.ov_runner import OvRunner
from tests.conftest import ROOT, run_cli
from tests.runtime_artifacts import (CLASSES, export_artifact, sample_images, source_model,
                                     torch_logits)

RES = 32
# The zoo's edge families at a small resolution (name, alpha).
FAMILIES = [("mobilenet_v2", 0.25), ("squeezenet1_1", 1.0), ("squeezenext23", 1.0),
            ("shufflenet_v2_x0_5", 1.0), ("mobilenet_v3_small", 0.5)]


@pytest.fixture(scope="session")
def art(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("runtime")
    mobilenet = dict(name="mobilenet", alpha=0.25, resolution=RES)
    out = {"root": root, "torch": source_model("mobilenet", alpha=0.25, resolution=RES)}
    out["main"] = export_artifact(root / "mobilenet", **mobilenet).parent  # the directory
    out["dynamic"] = export_artifact(root / "dynamic", **mobilenet, dynamic_batch=True)
    out["bare"] = export_artifact(root / "bare", **mobilenet, metadata=False)
    for name, alpha in FAMILIES:
        out[f"torch:{name}"] = source_model(name, alpha, RES)
        out[name] = export_artifact(root / name, name=name, alpha=alpha, resolution=RES,
                                    dynamic_batch=True)
    return out


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real JPEG photos plus a grayscale PNG and an RGBA PNG made from them."""
    china, flower = sample_images()
    folder = tmp_path_factory.mktemp("photos")
    gray = folder / "gray.png"
    Image.open(china).convert("L").save(gray)
    rgba = folder / "rgba.png"
    Image.open(flower).convert("RGBA").save(rgba)
    return [china, flower, gray, rgba]


def _random_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, RES, RES), dtype=np.float32)


# --- what a user gets ----------------------------------------------------------------------

def test_predict_an_artifact_matches_pytorch(art: dict, photos: list[Path]) -> None:
    model = load(art["main"])
    assert model.runtime == "onnxruntime" and model.selection.startswith("auto: onnxruntime")
    assert model.metadata.model == "mobilenet" and model.classes == CLASSES
    preds = model.predict(photos, topk=3)
    batch = model.preprocess(photos)
    assert batch.shape == (4, 3, RES, RES) and batch.dtype == np.float32
    expected = torch_logits(art["torch"], batch)
    logits = np.concatenate([model.infer(batch[i:i + 1]) for i in range(4)])  # static batch 1
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    for pred, row in zip(preds, expected):
        order = np.argsort(-row)[:3]
        assert pred.ids == tuple(order)
        assert pred.labels == tuple(CLASSES[i] for i in order)
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        np.testing.assert_allclose(pred.probs, probs[order], rtol=1e-4)
        assert pred.label == pred.labels[0] and pred.prob == max(pred.probs)


def test_preprocessing_matches_the_training_pipelines_eval_transform(photos: list[Path]) -> None:
    """What a model sees on the device is what it saw in validation (data/view.py feeds the
    training evaluation the runtime's own pixels; tests/test_preprocess.py has every mode)."""
    import torch

    from edgecnn.data import ImageDataset, eval_view
    from edgecnn.data.transforms import normalize

    for channels in (3, 1):
        m, s = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if channels == 3 else \
            ((0.45,), (0.226,))
        pre = Preprocess(RES, m, s)  # the squash policy, the default
        images = np.zeros((2, 3, 4, 4), np.uint8)  # stored pixels: evaluation re-decodes files
        ds = ImageDataset("digits", "val", images, np.zeros(2, np.int64), ["a"], (0.5,) * 3,
                          (0.2,) * 3, allow_hflip=False, augment="pad_crop",
                          files=tuple(photos[:2]))
        view = eval_view(ds, RES, channels)
        ref = normalize(torch.from_numpy(view.images), m, s).numpy()
        ours = pre(photos[:2])
        assert ours.shape == ref.shape == (2, channels, RES, RES)
        assert np.abs(ours - ref).max() <= 1e-5


def test_every_kind_of_image_gives_the_same_answer(art: dict, photos: list[Path]) -> None:
    model = load(art["main"], runtime="onnxruntime", device="cpu")
    china = photos[0]
    pixels = np.asarray(Image.open(china).convert("RGB"))
    by_path = model.predict(china)[0]
    assert model.predict(str(china))[0] == by_path
    assert model.predict(Image.open(china))[0] == by_path
    assert model.predict(pixels)[0] == by_path
    assert model.predict([pixels, china]) == [by_path, by_path]
    assert model.predict(np.stack([pixels, pixels])) == [by_path, by_path]
    gray = np.asarray(Image.open(photos[2]))  # (H, W) uint8
    assert model.predict(gray)[0] == model.predict(photos[2])[0]
    assert model.predict(gray[..., None])[0] == model.predict(photos[2])[0]
    assert len(model.predict(photos[3], topk=20)[0].ids) == len(CLASSES)  # top-20 of 10


def test_onnxruntime_and_openvino_agree_on_the_edge_families(art: dict,
                                                             photos: list[Path]) -> None:
    """Within 1e-4, or within twice float32's own error where the network is so deep that
    float32 alone is further than that from exact arithmetic: SqueezeNext-23 with random
    weights at 32 px amplifies rounding ~2x per block (torch fp32 vs fp64: ~1e-3). Judged on
    logits scaled to at most 1, as the export's parity check does (SqueezeNext-23's reach
    ~2,000 with initialized weights)."""
    import copy

    import torch

    for name, _ in [("main", 0), *FAMILIES]:
        ort_model = load(art[name], runtime="onnxruntime", device="cpu")
        ov_model = load(art[name], runtime="openvino", device="cpu")
        assert ov_model.describe().endswith("(CPU, f32)")
        n = 1 if name == "main" else 4  # the main artifact has a static batch of 1
        module = art["torch" if name == "main" else f"torch:{name}"]
        exact = copy.deepcopy(module).double()
        for batch in (_random_batch(n, seed=1), ort_model.preprocess(photos)[:n]):
            a, b = ort_model.infer(batch), ov_model.infer(batch)
            assert a.shape == (n, len(CLASSES)) and np.abs(a).max() > 0.1  # not vanishing
            with torch.no_grad():
                ref = exact(torch.from_numpy(batch).double()).numpy()
            scale = max(1.0, float(np.abs(ref).max()))
            fp32_error = np.abs(torch_logits(module, batch) - ref).max() / scale
            tolerance = max(1e-4, 2 * fp32_error)
            assert tolerance == 1e-4 or name == "squeezenext23"
            np.testing.assert_allclose(a, b, atol=tolerance * scale, err_msg=name)
        for p, q in zip(ort_model.predict(photos), ov_model.predict(photos)):
            assert p.ids == q.ids
            np.testing.assert_allclose(p.probs, q.probs, atol=1e-5)


def test_dynamic_batch_predicts_in_chunks(art: dict, photos: list[Path]) -> None:
    model = load(art["dynamic"], runtime="onnxruntime")
    assert model.runner.input.shape == (None, 3, RES, RES)
    many = photos * 20  # 80 images: three chunks of up to 32
    preds = model.predict(many, topk=2)
    assert len(preds) == 80
    one_by_one = [model.predict(p, topk=2)[0] for p in photos]
    for i, pred in enumerate(preds):
        assert pred.ids == one_by_one[i % 4].ids
        np.testing.assert_allclose(pred.probs, one_by_one[i % 4].probs, rtol=1e-5)
    # and it agrees with the static artifact exported by the dynamo exporter
    static = load(art["main"])
    np.testing.assert_allclose(model.infer(_random_batch(1)), static.infer(_random_batch(1)),
                               atol=1e-4)


def test_an_onnx_file_without_metadata_needs_the_preprocessing(art: dict,
                                                               photos: list[Path]) -> None:
    with pytest.raises(EdgeCNNError, match="no edgecnn metadata.*mean and std"):
        load(art["bare"])
    reference = load(art["main"]).predict(photos)
    spec_mean, spec_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    # resolution comes from the file's fixed input shape; labels default to the ids
    model = load(art["bare"], mean=spec_mean, std=spec_std)
    assert model.metadata is None and model.classes is None
    assert [p.ids for p in model.predict(photos)] == [p.ids for p in reference]
    assert model.predict(photos[0])[0].labels[0] == str(reference[0].id)
    model = load(art["bare"], preprocess=Preprocess(RES, spec_mean, spec_std), classes=CLASSES)
    assert model.predict(photos) == reference
    with pytest.raises(EdgeCNNError, match="10 class names for 10|3 class names"):
        load(art["bare"], mean=spec_mean, std=spec_std, classes=("a", "b", "c")).predict(photos)
    with pytest.raises(EdgeCNNError, match="makes 3x64x64 images but the model takes 3x32x32"):
        load(art["bare"], mean=spec_mean, std=spec_std, resolution=64)


def test_auto_selection_on_this_machine(art: dict) -> None:
    """No GPU here: auto picks ONNX Runtime on the CPU and says so; a CUDA device that no
    installed runtime can serve is an error that says what to install."""
    model = load(art["main"])
    assert model.runtime == "onnxruntime" and model.describe().startswith("onnxruntime ")
    assert "CPUExecutionProvider" in model.describe()
    # an artifact directory: the selection also says whether a tuning fits this machine
    # (this one holds no int8 file: tune has nothing to tune, and the line does not send the
    # user there)
    assert load(art["main"], device="cpu").selection == (
        "auto: onnxruntime on cpu; not tuned: it has no int8 file, so there is nothing to tune")
    assert load(art["main"], runtime="openvino").selection == "openvino on cpu (asked for)"
    with pytest.raises(EdgeCNNError, match="no runtime for cuda.*onnxruntime-gpu"):
        load(art["main"], device="cuda")
    with pytest.raises(EdgeCNNError, match="has no CUDAExecutionProvider: pip install "
                                           "onnxruntime-gpu"):
        load(art["main"], runtime="onnxruntime", device="cuda")
    with pytest.raises(EdgeCNNError, match="openvino does not run on CUDA"):
        load(art["main"], runtime="openvino", device="cuda")
    with pytest.raises(EdgeCNNError, match="openvino has no device 'NPU'"):
        load(art["main"], runtime="openvino", device="npu")


OUT_OF_ORDER = """
import ctypes, gc, gzip, signal, sys, time
from edgecnn.runtime.ov_runner import OvOptions, OvRunner

def runner():
    r = OvRunner(sys.argv[1], "cpu", OvOptions(precision="f32"))
    r.activate()
    return r

a, b = runner(), runner()  # export's parity, guard and timing make and drop them so
a.deactivate(); del a; gc.collect()
c = runner()
b.deactivate(); c.deactivate(); del b, c; gc.collect()

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

st = Stack()
assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(st)) == 0
spans = [[int(v, 16) for v in line.split()[0].split("-")] for line in open("/proc/self/maps")]
mapped = st.flags & 2 or any(lo <= (st.sp or 0) < hi for lo, hi in spans)  # 2: SS_DISABLE
print("altstack", hex(st.sp or 0), "mapped" if mapped else "unmapped", flush=True)
signal.setitimer(signal.ITIMER_REAL, 0.3)  # a signal, handled on that stack, while zlib
signal.signal(signal.SIGALRM, lambda *_: sys.exit(7))  # works beside it
data = bytes(range(256)) * 20000
while True:
    gzip.compress(data, 9)
"""


def test_openvino_runners_dropped_out_of_order_leave_signals_safe(art: dict) -> None:
    """A new user's Ctrl-C late in an export crashed it with SIGSEGV (2 of 8 tries). Each
    OpenVINO Core's CPU plugin sets the thread's alternate signal stack and puts back the one
    it found when dropped; cores dropped out of order (OpenVINO 2026.4.1) left it on unmapped
    memory, where Python handles signals. One Core per process (ov_runner.core) keeps it
    valid. Before: 'unmapped' and exit -11 in 4 of 4 runs of this script."""
    proc = subprocess.run([sys.executable, "-c", OUT_OF_ORDER,
                           str(art["main"] / "model.onnx")], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split()[2:3] == ["mapped"], proc.stdout + proc.stderr
    assert proc.returncode == 7, (proc.returncode, proc.stderr[-500:])


def test_runner_interface_and_options(art: dict) -> None:
    path = art["dynamic"]
    batch = _random_batch(3)
    with OrtRunner(path) as plain:
        assert plain.is_active and plain.last_inference_time() is None
        expected = plain.infer(batch)
        assert plain.last_inference_time() > 0
    assert not plain.is_active
    with pytest.raises(EdgeCNNError, match="not active"):
        plain.infer(batch)
    options = [OrtOptions(threads=1, inter_op_threads=1, spinning=False),
               OrtOptions(graph_optimization="disable"), OrtOptions(io_binding=True)]
    for opts in options:
        with OrtRunner(path, "cpu", opts) as runner:
            np.testing.assert_allclose(runner.infer(batch), expected, atol=1e-5)
    model = load(path, runtime="openvino", threads=1, precision=None, performance_hint="LATENCY")
    np.testing.assert_allclose(model.infer(batch), expected, atol=1e-2)  # bf16 where the CPU has it
    with OvRunner(path) as ov:
        np.testing.assert_allclose(ov.infer(batch), expected, atol=1e-4)
    with load(path, threads=1) as model:
        assert model.runner.options.threads == 1
    assert not model.runner.is_active


def test_pytorch_runner_matches_onnxruntime(art: dict) -> None:
    from edgecnn.bench.torch_runner import TorchOptions, TorchRunner

    batch = _random_batch(2)
    with TorchRunner(art["torch"], input_shape=(3, RES, RES)) as runner:
        assert runner.input.shape == (None, 3, RES, RES)
        np.testing.assert_allclose(runner.infer(batch), load(art["dynamic"]).infer(batch),
                                   atol=1e-4)
        with pytest.raises(EdgeCNNError, match="must have shape Nx3x32x32, got 2x3x16x16"):
            runner.infer(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(EdgeCNNError, match="cudagraphs mode needs a CUDA device"):
        TorchRunner(art["torch"], options=TorchOptions(mode="cudagraphs"))
    with pytest.raises(EdgeCNNError, match="option mode must be one of"):
        TorchOptions(mode="fast")


# --- bad input: one line, one exception type -------------------------------------------------

def test_bad_files(art: dict, tmp_path: Path) -> None:
    good = Path(art["main"]) / "model.onnx"
    data = good.read_bytes()
    cases = {
        tmp_path / "missing.onnx": "no such file",
        tmp_path: "no model.onnx in this artifact directory",
    }
    (tmp_path / "empty.onnx").write_bytes(b"")
    cases[tmp_path / "empty.onnx"] = "empty file"
    for cut in (7, 100, len(data) // 2, len(data) - 3):
        (tmp_path / f"cut{cut}.onnx").write_bytes(data[:cut])
        cases[tmp_path / f"cut{cut}.onnx"] = "not a valid ONNX model"
    jpeg = tmp_path / "photo.onnx"
    jpeg.write_bytes(sample_images()[0].read_bytes())
    cases[jpeg] = "not a valid ONNX model"
    text = tmp_path / "text.onnx"
    text.write_text("ir_version: 8\ngraph { }\n")
    cases[text] = "not a valid ONNX model"
    for path, message in cases.items():
        with pytest.raises(EdgeCNNError, match=message) as info:
            load(path)
        assert "\n" not in str(info.value)
    with pytest.raises(EdgeCNNError, match=r"no model.int8.onnx .*it has model.onnx"):
        load(art["main"], precision="int8")
    with pytest.raises(EdgeCNNError, match="precision picks a file in an artifact directory"):
        load(good, precision="fp32")


@pytest.mark.parametrize("kwargs, message", [
    ({"runtime": "tflite"}, "unknown runtime 'tflite'; choose auto, onnxruntime"),
    ({"runtime": "tensorrt"}, "tensorrt is not installed: pip install tensorrt cuda-python"),
    ({"threads": -1}, "threads must be at least 0"),
    ({"threads": 1.5}, "threads must be int"),
    ({"thread": 2}, "unknown option 'thread' for onnxruntime; its options are provider, threads"),
    ({"runtime": "openvino", "precision": "bf17"}, "precision must be one of fp32"),
    ({"runtime": "openvino", "io_binding": True}, "unknown option 'io_binding' for openvino"),
    ({"provider": "tensorrt"}, "provider 'tensorrt' needs device='cuda'"),
    ({"mean": (0.5,), "std": (0.5,)}, "makes 1x32x32 images but the model takes 3x32x32"),
    ({"preprocess": "resize"}, "preprocess must be a Preprocess"),
    ({"device": ""}, "runtime and device must be names"),
])
def test_bad_arguments(art: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(EdgeCNNError, match=message):
        load(art["main"], **kwargs)


def test_bad_images_and_batches(art: dict, tmp_path: Path) -> None:
    model = load(art["main"])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(sample_images()[0].read_bytes()[:2000])
    bad_images = [
        (str(not_image), "notes.jpg: not an image Pillow can read"),
        (str(truncated), "cut.jpg: cannot read image"),
        (str(tmp_path / "nope.png"), "no such image file"),
        (str(tmp_path), "is a directory"),
        (np.zeros((8, 8, 3), np.float32), "must be uint8"),
        (np.zeros((8, 8, 2), np.uint8), r"must be \(H, W\) or \(H, W, 1\|3\|4\)"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (3.5, "expected an image or a list of images, got float"),
        ([3.5], "an image must be a file path, a Pillow image or a uint8 numpy array"),
    ]
    for image, message in bad_images:
        with pytest.raises(EdgeCNNError, match=message):
            model.predict(image)
    with pytest.raises(EdgeCNNError, match="no images given"):
        model.predict([])
    with pytest.raises(EdgeCNNError, match="topk must be a positive integer"):
        model.predict(sample_images()[0], topk=0)
    good = _random_batch(1)
    bad_batches = [
        (good.astype(np.float64), "must be float32, got float64"),
        (good[0], "must have shape 1x3x32x32, got 3x32x32"),
        (_random_batch(2), "must have shape 1x3x32x32, got 2x3x32x32"),
        (good.transpose(0, 2, 3, 1), "got 1x32x32x3"),
        (good.tolist(), "expected a numpy array"),
    ]
    for batch, message in bad_batches:
        with pytest.raises(EdgeCNNError, match=message):
            model.infer(batch)
    dynamic = load(art["dynamic"])
    with pytest.raises(EdgeCNNError, match="is empty"):
        dynamic.infer(np.zeros((0, 3, RES, RES), np.float32))
    # a non-contiguous view is fine (copied), not an error
    wide = _random_batch(2)
    np.testing.assert_allclose(dynamic.infer(wide[::2]), dynamic.infer(wide[:1]), atol=1e-6)


def test_external_data_must_stay_in_the_models_directory(art: dict, tmp_path: Path) -> None:
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    proto = onnx.load(str(art["dynamic"]))
    inside = tmp_path / "inside"
    inside.mkdir()
    convert_model_to_external_data(proto, location="weights.bin", size_threshold=0)
    onnx.save_model(proto, str(inside / "model.onnx"))
    assert read_onnx(inside / "model.onnx").external_data == {"weights.bin"}
    batch = _random_batch(2)
    np.testing.assert_allclose(load(inside).infer(batch), load(art["dynamic"]).infer(batch),
                               atol=1e-6)  # external weights inside the directory: fine
    secret = tmp_path / "secret.bin"
    secret.write_bytes((inside / "weights.bin").read_bytes())
    for location, message in [("../secret.bin", "outside the model's directory"),
                              (str(secret), "refusing external data location"),
                              ("missing.bin", "external data file 'missing.bin' is missing")]:
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        evil = tmp_path / f"evil{len(location)}"
        evil.mkdir()
        onnx.save_model(proto, str(evil / "model.onnx"))
        with pytest.raises(EdgeCNNError, match=message):
            load(evil, runtime="openvino")


# --- the command line, the device app, and no torch -----------------------------------------

def test_predict_command(art: dict, photos: list[Path], tmp_path: Path) -> None:
    proc = run_cli("predict", str(art["main"]), str(photos[0]), str(photos[1]), "--topk", "2",
                   check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == str(photos[0]) and len(lines) == 6
    assert "onnxruntime" in proc.stderr and "untrained weights" in proc.stderr
    expected = load(art["main"]).predict(photos[:2], topk=2)
    assert lines[1].split()[1:] == [str(expected[0].id), expected[0].label]
    proc = run_cli("predict", str(art["main"]), str(photos[2].parent), "--json",
                   "--runtime", "openvino", check=True)
    out = json.loads(proc.stdout)
    assert out["runtime"] == "openvino" and out["model"] == "mobilenet"
    assert [p["image"] for p in out["predictions"]] == [str(photos[2]), str(photos[3])]
    assert len(out["predictions"][0]["top"]) == 5
    assert abs(sum(t["prob"] for t in out["predictions"][0]["top"]) - 1) < 0.5
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    for args in ([str(art["main"]), str(bad)], [str(photos[0]), str(photos[0])],
                 [str(art["main"]), str(photos[0]), "--runtime", "tensorrt"]):
        proc = run_cli("predict", *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("edgecnn: error:") == 1 and "Traceback" not in proc.stderr


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_the_runtime_never_imports_torch(art: dict, photos: list[Path]) -> None:
    code = """if True:
        import sys
        from edgecnn.runtime import load
        from edgecnn.cli.main import main
        model = load(sys.argv[1])
        pred = model.predict(sys.argv[2])[0]
        load(sys.argv[1], runtime="openvino").predict(sys.argv[2])
        assert main(["predict", sys.argv[1], sys.argv[2]]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")
                       or m in ("edgecnn.registry", "edgecnn.models", "matplotlib", "yaml"))
        print("HEAVY", heavy, pred.label)
    """
    proc = _run_python(code, str(art["main"]), str(photos[0]))
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_the_base_install_is_enough(art: dict, photos: list[Path]) -> None:
    """As after `pip install edgecnn` without extras: every package outside the base
    dependencies (numpy, onnxruntime, pillow) made unimportable, the runtime still loads,
    predicts and picks ONNX Runtime; asking for OpenVINO says what to install."""
    code = """if True:
        import sys
        BLOCKED = {"torch", "onnx", "onnxscript", "onnxslim", "torch_pruning", "openvino",
                   "sklearn", "mlxtend", "matplotlib", "tqdm", "yaml", "zstandard", "tensorrt"}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Blocker())
        from edgecnn.runtime import EdgeCNNError, load
        model = load(sys.argv[1])
        assert model.selection.startswith("auto: onnxruntime on cpu; not tuned"), model.selection
        print("TOP", model.predict(sys.argv[2], topk=1)[0].id)
        try:
            load(sys.argv[1], runtime="openvino")
        except EdgeCNNError as exc:
            print("OV", exc)
    """
    proc = _run_python(code, str(art["main"]), str(photos[0]))
    assert proc.returncode == 0, proc.stderr
    assert f"TOP {load(art['main']).predict(photos[0])[0].id}" in proc.stdout
    assert "OV openvino is not installed: pip install openvino" in proc.stdout


def test_deploy_app_classifies_a_folder(art: dict, photos: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "camera-roll"
    folder.mkdir()
    for p in photos:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "README.txt").write_text("not an image: skipped by suffix")
    code = """if True:
        import runpy, sys
        sys.argv = ["app.py", *sys.argv[1:]]
        try:
            runpy.run_path("deploy/app.py", run_name="__main__")
        except SystemExit as exc:
            assert not exc.code, exc.code
        assert "torch" not in sys.modules
    """
    proc = _run_python(code, str(art["main"]), "--images", str(folder), "--topk", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected = load(art["main"]).predict(sorted(folder.glob("*.[jp][pn]g")), topk=1)
    names = sorted(p.name for p in photos)
    for name, pred in zip(names, expected):
        line = next(line for line in lines if line.startswith(name))
        assert pred.label in line and f"{pred.prob:.1%}" in line
    assert "4 images" in lines[-1]
    proc = _run_python(code, str(art["main"]), "--images", str(tmp_path / "none"))
    assert proc.returncode != 0 and "no such folder" in proc.stderr
