"""ONNX files edgecnn did not write, as users bring them: made here with plain
`torch.onnx.export` or `onnx.helper`, loaded by the torch-free runtime, and checked against
what the model itself computes.

- IR 3 files that list their weights among the graph inputs (before the data input);
- Caffe-style classifiers whose output is (N, C, 1, 1), ending in Softmax;
- graphs that end in Softmax (no second softmax on top);
- NHWC inputs (TensorFlow's layout) with the Transpose inside the graph;
- the CLI and deploy/app.py with --mean/--std/--resolution/--labels, and their bad inputs.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime import load, read_onnx
from edgecnn.runtime.onnx_file import parse_onnx

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RUNTIMES = ("onnxruntime", "openvino")


class Net(nn.Module):
    """A small classifier; `head` picks how it ends."""

    def __init__(self, head: str = "logits", classes: int = 5, nhwc: bool = False) -> None:
        super().__init__()
        self.head, self.nhwc = head, nhwc
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Conv2d(8, classes, 1)  # Caffe's 1x1 conv classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = self.classifier(self.features(x))  # (N, classes, 1, 1)
        if self.head in ("softmax", "caffe"):
            x = torch.softmax(x, dim=1)
        return x if self.head == "caffe" else x.flatten(1)


def export(model: nn.Module, shape: tuple[int, ...], path: Path, **kwargs) -> Path:
    torch.manual_seed(0)
    for p in model.parameters():  # weights that make the classes differ clearly
        nn.init.normal_(p, std=0.5)
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(shape),), buf, dynamo=False, opset_version=17,
                      input_names=["data"], output_names=["prob"], **kwargs)
    path.write_bytes(buf.getvalue())
    return path


def images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """uint8 (H, W, 3) images at the model's size: no resize, so the expected input is
    (pixel / 255 - mean) / std, computed here independently of the runtime."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def normalized(ims: list[np.ndarray], nhwc: bool = False) -> torch.Tensor:
    x = (np.stack(ims).astype(np.float64) / 255 - MEAN) / STD  # (N, H, W, 3)
    x = x if nhwc else x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def probabilities(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = model.eval()(x).flatten(1)
    if model.head == "logits":
        out = torch.softmax(out.double(), dim=1)
    return out.double().numpy()


def check_predictions(path: Path, model: nn.Module, ims: list[np.ndarray], runtime: str,
                      nhwc: bool = False, **load_args) -> None:
    with load(path, runtime=runtime, mean=MEAN, std=STD, **load_args) as loaded:
        preds = loaded.predict(ims, topk=5)
    want = probabilities(model, normalized(ims, nhwc))
    for pred, row in zip(preds, want):
        got = np.zeros_like(row)
        got[list(pred.ids)] = pred.probs
        np.testing.assert_allclose(got, row, atol=1e-5)
        assert pred.id == int(row.argmax())
        assert abs(sum(pred.probs) - 1) < 1e-5  # probabilities, not a softmax of them


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_graph_ending_in_softmax_gets_no_second_softmax(tmp_path: Path, runtime: str) -> None:
    model = Net("softmax")
    path = export(model, (1, 3, 16, 16), tmp_path / "softmax.onnx")
    assert read_onnx(path).softmax_output
    check_predictions(path, model, images(3, 16), runtime)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_caffe_style_n_c_1_1_output_is_squeezed(tmp_path: Path, runtime: str) -> None:
    model = Net("caffe")
    path = export(model, (1, 3, 16, 16), tmp_path / "caffe.onnx")
    info = read_onnx(path)
    assert info.outputs[0].shape == (1, 5, 1, 1) and info.softmax_output
    check_predictions(path, model, images(2, 16), runtime)
    with load(path, runtime=runtime, mean=MEAN, std=STD) as loaded:
        assert loaded.infer(normalized(images(1, 16)).numpy()).shape == (1, 5)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_logits_with_dynamic_batch_and_size_need_resolution(tmp_path: Path, runtime: str) -> None:
    model = Net("logits")
    path = export(model, (1, 3, 16, 16), tmp_path / "dyn.onnx",
                  dynamic_axes={"data": {0: "n", 2: "h", 3: "w"}, "prob": {0: "n"}})
    assert not read_onnx(path).softmax_output
    with pytest.raises(EdgeCNNError, match="not fixed; pass resolution"):
        load(path, runtime=runtime, mean=MEAN, std=STD)
    check_predictions(path, model, images(3, 20), runtime, resolution=20)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_nhwc_input_is_read_from_the_shape(tmp_path: Path, runtime: str) -> None:
    model = Net("logits", nhwc=True)
    path = export(model, (1, 16, 16, 3), tmp_path / "nhwc.onnx")
    assert read_onnx(path).layout == "NHWC"
    assert read_onnx(export(Net(), (1, 3, 16, 16), tmp_path / "nchw.onnx")).layout == "NCHW"
    check_predictions(path, model, images(2, 16), runtime, nhwc=True)


def ir3_model(weights_first: bool = True) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """An IR 3 / opset 8 file as old converters wrote it: every initializer is also a graph
    input, listed here before the data input."""
    rng = np.random.default_rng(1)
    w = {"conv_w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
         "conv_b": rng.standard_normal(4).astype(np.float32),
         "fc_w": rng.standard_normal((6, 4)).astype(np.float32),
         "fc_b": rng.standard_normal(6).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["data", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1)]
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 12, 12])
    weights = [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in w.items()]
    graph = helper.make_graph(
        nodes, "ir3", [*weights, data] if weights_first else [data, *weights],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 6])],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    proto.ir_version = 3
    return proto, w


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ir3_file_with_initializers_among_inputs(tmp_path: Path, runtime: str) -> None:
    proto, w = ir3_model()
    path = tmp_path / "ir3.onnx"
    path.write_bytes(proto.SerializeToString())
    info = read_onnx(path)
    assert info.ir_version == 3 and [t.name for t in info.inputs] == ["data"]
    ims = images(2, 12)
    x = normalized(ims)
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    logits = torch.relu(torch.conv2d(x, t["conv_w"], t["conv_b"], padding=1)).mean((2, 3))
    want = torch.softmax((logits @ t["fc_w"].T + t["fc_b"]).double(), 1).numpy()
    with load(path, runtime=runtime, mean=MEAN, std=STD) as model:
        preds = model.predict(ims, topk=6)
    for pred, row in zip(preds, want):
        np.testing.assert_allclose(pred.probs, row[list(pred.ids)], atol=1e-5)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runners_take_the_model_bytes(tmp_path: Path, runtime: str) -> None:
    """The same graph from memory and from its file: the same logits."""
    from edgecnn.runtime import runner_class

    proto, _ = ir3_model(weights_first=False)
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    x = normalized(images(1, 12)).numpy()
    cls = runner_class(runtime)
    with cls(proto.SerializeToString(), "cpu") as from_bytes, cls(path, "cpu") as from_file:
        np.testing.assert_array_equal(from_bytes.infer(x), from_file.infer(x))
        assert from_bytes.path is None and from_bytes.info.inputs[0].name == "data"


def test_model_bytes_with_external_data_or_no_model_are_refused() -> None:
    proto, _ = ir3_model()
    tensor = proto.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="weights.bin")
    with pytest.raises(EdgeCNNError, match="external data"):
        parse_onnx(proto.SerializeToString())
    with pytest.raises(EdgeCNNError, match="model bytes: not a valid ONNX model"):
        parse_onnx(b"\xff\xd8\xff\xe0 a JPEG")


def test_model_without_an_image_input_is_one_error(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "tabular",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    path = tmp_path / "tabular.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                ir_version=8), path)
    with pytest.raises(EdgeCNNError, match="2 dimensions; an image model takes"):
        load(path, runtime="onnxruntime", mean=MEAN, std=STD, resolution=10)


def test_wrong_mean_length_and_label_count_are_errors(tmp_path: Path) -> None:
    path = export(Net(), (1, 3, 16, 16), tmp_path / "m.onnx")
    with pytest.raises(EdgeCNNError, match="mean has 1 values but .* takes 3 channels"):
        load(path, runtime="onnxruntime", mean=(0.5,), std=(0.5,))
    with pytest.raises(EdgeCNNError, match="4 class names for the 5 classes"):
        load(path, runtime="onnxruntime", mean=MEAN, std=STD, classes="abcd")


def test_old_metadata_without_output_key_reads_as_logits() -> None:
    from edgecnn.metadata import ArtifactMetadata

    meta = ArtifactMetadata(model="m", alpha=1.0, resolution=8, in_chans=3, mean=MEAN,
                            std=STD, classes=("a", "b"), layout="NHWC",
                            output="probabilities")
    props = meta.to_props()
    assert ArtifactMetadata.from_props(props) == meta
    del props["edgecnn.output"]  # what artifacts written before the field say
    assert ArtifactMetadata.from_props(props).output == "logits"
    with pytest.raises(EdgeCNNError, match="output must be one of"):
        ArtifactMetadata.from_props({**props, "edgecnn.output": "scores"})


# --- the CLI and the device app ---------------------------------------------------------------

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Net]:
    """A Softmax-ended ONNX file without edgecnn metadata, its labels and an image."""
    root = tmp_path_factory.mktemp("foreign")
    model = Net("softmax")
    path = export(model, (1, 3, 16, 16), root / "other.onnx")
    labels = root / "labels.txt"
    labels.write_text("cat\ndog\nbird\nfish\nfrog\n\n", encoding="utf-8")
    image = root / "img.png"
    Image.fromarray(images(1, 16)[0]).save(image)
    return path, labels, image, model


def test_predict_cli_takes_preprocessing_flags(foreign) -> None:
    path, labels, image, model = foreign
    flags = ["--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))]
    out = run("-m", "edgecnn", "predict", str(path), str(image), *flags, "--labels",
              str(labels), "--runtime", "onnxruntime", "--json", "--topk", "5")
    assert out.returncode == 0, out.stderr
    top = json.loads(out.stdout)["predictions"][0]["top"]
    want = probabilities(model, normalized([np.asarray(Image.open(image))]))[0]
    names = ["cat", "dog", "bird", "fish", "frog"]
    assert [t["label"] for t in top] == [names[i] for i in np.argsort(-want)]
    np.testing.assert_allclose([t["prob"] for t in top], np.sort(want)[::-1], atol=1e-5)


def test_device_app_takes_preprocessing_flags(foreign) -> None:
    path, labels, image, _ = foreign
    out = run("deploy/app.py", str(path), "--images", str(image.parent), "--mean", "0.5",
              "--std", "0.25", "--resolution", "16", "--labels", str(labels))
    # One value is a gray model's mean: this model takes 3 channels, which the app says.
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "mean has 1 values" in out.stderr
    out = run("deploy/app.py", str(path), "--images", str(image.parent), "--mean",
              ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)), "--labels",
              str(labels), "--runtime", "openvino")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("img.png  ") and "%" in out.stdout


@pytest.mark.parametrize("case, message", [
    ("mean-length", "expected R,G,B"),
    ("labels-count", "3 class names for the 5 classes"),
    ("no-std", "--mean and --std go together"),
    ("not-onnx", "not a valid ONNX model"),
    ("no-metadata", "has no edgecnn metadata: pass mean and std"),
])
def test_predict_bad_inputs_are_one_line_exit_2(foreign, tmp_path: Path, case: str,
                                                message: str) -> None:
    path, labels, image, _ = foreign
    rgb = ["--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2"]
    args = {"mean-length": [str(path), str(image), "--mean", "0.5,0.5", "--std", "1,1,1"],
            "no-std": [str(path), str(image), "--mean", "0.5,0.5,0.5"],
            "no-metadata": [str(path), str(image)]}.get(case)
    if case == "labels-count":
        short = tmp_path / "three.txt"
        short.write_text("a\nb\nc\n", encoding="utf-8")
        args = [str(path), str(image), *rgb, "--labels", str(short)]
    if case == "not-onnx":
        fake = tmp_path / "photo.onnx"
        fake.write_bytes(image.read_bytes())
        args = [str(fake), str(image), *rgb]
    out = run("-m", "edgecnn", "predict", *args)
    assert out.returncode == 2
    assert message in out.stderr and out.stderr.strip().count("\n") == 0, out.stderr
    assert "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def dynamic_ten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-class logits model of dynamic batch and size: digits' classes."""
    path = tmp_path_factory.mktemp("dyn10") / "ten.onnx"
    return export(Net("logits", classes=10), (1, 3, 16, 16), path,
                  dynamic_axes={"data": {0: "n", 2: "h", 3: "w"}, "prob": {0: "n"}})


def test_bench_takes_resolution_and_preprocessing_for_a_foreign_file(dynamic_ten: Path) -> None:
    """Its accuracy on digits is what the runtime's own predict gives on the same images."""
    from edgecnn.data import load_dataset

    flags = ["--mean", ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD))]
    out = run("-m", "edgecnn", "bench", str(dynamic_ten), "--resolution", "16", "--data",
              "digits", *flags, "--iters", "3", "--warmup", "1", "--rounds", "1",
              "--threads", "1", "--format", "json", "--no-progress")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)["records"][0]
    ds = load_dataset("digits", split="val")
    ims = [im[0] for im in ds.images]  # (1, 8, 8) gray uint8 -> (8, 8)
    with load(dynamic_ten, runtime="onnxruntime", mean=MEAN, std=STD, resolution=16) as m:
        top1 = np.array([p.id for p in m.predict(ims, topk=1)])
    assert record["accuracy_top1_pct"] == pytest.approx(100 * np.mean(top1 == ds.labels))
    missing = run("-m", "edgecnn", "bench", str(dynamic_ten), "--iters", "2")
    assert missing.returncode == 2 and "--resolution N sets a dynamic size" in missing.stderr
