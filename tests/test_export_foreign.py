"""Models edgecnn did not write: ONNX files from plain torch.onnx (as found in the wild) and a
user's nn.Module imported by path. Each goes through `edgecnn export` to a normal artifact
that the torch-free runtime reads and that computes what the original computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgecnn.export.source import init_bn_stats
from tests.conftest import run_cli
from tests.export_helpers import cli
from tests.usermodels import SmallCNN

pytest.importorskip("onnxruntime")

RES = 16
MEAN, STD = "0.5,0.5,0.5", "0.25,0.25,0.25"


class _Nhwc(nn.Module):  # a TensorFlow-style input: (N, H, W, C)
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x.permute(0, 3, 1, 2))


class _Softmax(nn.Module):  # a graph that ends in Softmax
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):  # noqa: ANN001, ANN201
        return torch.softmax(self.net(x), 1)


class _Nc11(nn.Module):  # a Caffe-style head: class scores shaped (N, C, 1, 1)
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.body = SmallCNN(classes, width=8).features
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.head(nn.functional.adaptive_avg_pool2d(self.body(x), 1))


def _net(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    net = SmallCNN(classes, width=8)
    init_bn_stats(net, torch.randn(8, 3, RES, RES))
    return net


def _write(model: nn.Module, path: Path, shape: tuple[int, ...], *, opset: int = 13,
           dynamic: bool = False, ir: int | None = None, initializers_as_inputs: bool = False,
           props: dict[str, str] | None = None) -> Path:
    model.eval()
    torch.onnx.export(model, (torch.randn(*shape),), str(path), dynamo=False,
                      opset_version=opset, input_names=["data"], output_names=["scores"],
                      keep_initializers_as_inputs=initializers_as_inputs,
                      dynamic_axes={"data": {0: "n", 2: "h", 3: "w"}} if dynamic else None)
    proto = onnx.load(str(path))
    if ir is not None:
        proto.ir_version = ir
    onnx.helper.set_model_props(proto, props or {})
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def wild(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, nn.Module]]:
    """One file per case found in the wild, with the torch module it came from."""
    d = tmp_path_factory.mktemp("wild")
    nchw = (1, 3, RES, RES)
    net = _net()
    torch.manual_seed(1)
    nc11 = _Nc11(10)
    init_bn_stats(nc11, torch.randn(8, 3, RES, RES))
    cases = {
        "plain": (_write(net, d / "plain.onnx", nchw, props={"author": "someone else"}), net),
        # IR 3 / opset 9: initializers listed among the graph inputs
        "ir3-initializer-inputs": (_write(net, d / "ir3.onnx", nchw, opset=9, ir=3,
                                          initializers_as_inputs=True), net),
        "nhwc": (_write(_Nhwc(net), d / "nhwc.onnx", (1, RES, RES, 3)), _Nhwc(net)),
        "softmax": (_write(_Softmax(net), d / "softmax.onnx", nchw), net),
        "nc11": (_write(nc11, d / "nc11.onnx", nchw), nc11),
        "dynamic-size": (_write(net, d / "dynamic.onnx", nchw, dynamic=True), net),
    }
    return cases


@pytest.mark.parametrize("case", ["ir3-initializer-inputs", "nhwc", "softmax", "nc11",
                                  "dynamic-size"])
def test_wild_files_export_and_compute_what_the_original_computes(
        case: str, wild: dict, tmp_path: Path, capsys) -> None:
    from edgecnn.runtime import load

    path, module = wild[case]
    out = tmp_path / "art"
    code, stdout, err = cli(capsys, "export", str(path), "--mean", MEAN, "--std", STD,
                            "--resolution", str(RES), "-o", str(out))
    assert code == 0, err
    report = json.loads((out / "export.json").read_text())
    f = report["onnx_file"]
    # the file's free batch axis "n", fixed to 1 without --dynamic-batch, is said so
    assert f["batch_fixed"] == ("n" if case == "dynamic-size" else "")
    assert ("batch axis n fixed to 1 (--dynamic-batch" in stdout) is (case == "dynamic-size")
    assert f["softmax_removed"] is (case == "softmax")
    assert f["output_flattened"] is (case == "nc11")
    assert f["layout_in"] == ("NHWC" if case == "nhwc" else "NCHW")
    assert report["opset"] == 17 and report["ir_version"] <= 10
    proto = onnx.load(str(out / "model.onnx"))
    assert [i.name for i in proto.graph.input] == ["input"]  # no initializer among them
    # the artifact, through the torch-free runtime, against the PyTorch module it came from
    x = np.random.default_rng(0).standard_normal((4, 3, RES, RES), dtype=np.float32)
    model = load(out / "model.onnx")
    got = np.concatenate([model.infer(x[i:i + 1]) for i in range(4)])
    with torch.no_grad():
        t = torch.from_numpy(x)
        want = module(t.permute(0, 2, 3, 1) if case == "nhwc" else t).flatten(1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_foreign_file_int8_keeps_its_metadata_and_reads_labels(wild: dict, tmp_path: Path,
                                                               capsys) -> None:
    path, _ = wild["plain"]
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    out = tmp_path / "art"
    code, stdout, err = cli(capsys, "export", str(path), "--mean", MEAN, "--std", STD,
                            "--labels", str(labels), "--int8", "--calib-data", "digits",
                            "--calib-samples", "32", "-o", str(out))
    assert code == 0, err
    props = {p.key: p.value for p in onnx.load(str(out / "model.int8.onnx")).metadata_props}
    assert props["author"] == "someone else"  # the file's own metadata is kept
    assert json.loads(props["edgecnn.classes"])[3] == "digit 3"
    assert props["edgecnn.precision"] == "int8" and props["edgecnn.resolution"] == str(RES)
    report = json.loads((out / "export.json").read_text())
    # "digit 3" is not the data set's class "3": no labels to score against, so agreement
    assert report["source"] == "onnx" and report["int8"]["criterion"] == "agreement"
    assert "from " in stdout and "opset 13 -> 17" in stdout


def test_nhwc_file_with_an_inner_tensor_named_input_is_refused(wild: dict, tmp_path: Path,
                                                                capsys) -> None:
    """The NCHW input edgecnn puts in front of an NHWC file is named `input`: a file whose
    own inner tensor has that name gets one line saying so, and no artifact."""
    proto = onnx.load(str(wild["nhwc"][0]))
    inner = proto.graph.node[0].output[0]  # the file's own NHWC -> NCHW Transpose
    for node in proto.graph.node:
        node.input[:] = ["input" if t == inner else t for t in node.input]
        node.output[:] = ["input" if t == inner else t for t in node.output]
    path = tmp_path / "clash.onnx"
    onnx.save(proto, str(path))
    out = tmp_path / "art"
    code, _, err = cli(capsys, "export", str(path), "--mean", MEAN, "--std", STD,
                       "-o", str(out))
    assert code == 2 and "already has a tensor named 'input'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_guard_uses_agreement_when_classes_are_not_the_datas(tmp_path: Path, capsys) -> None:
    """A 7-class model calibrated on the 10 digits: no labels to score it against."""
    path = _write(_net(7), tmp_path / "seven.onnx", (1, 3, RES, RES))
    out = tmp_path / "art"
    code, stdout, err = cli(capsys, "export", str(path), "--mean", MEAN, "--std", STD,
                            "--int8", "--calib-data", "digits", "--calib-samples", "32",
                            "--min-agreement", "50", "-o", str(out))
    assert code == 0, err
    int8 = json.loads((out / "export.json").read_text())["int8"]
    assert int8["criterion"] == "agreement" and int8["min_agreement"] == 50
    assert int8["final"]["top1_fp32"] is None and int8["final"]["agreement"] >= 50
    assert "agreement with fp32" in stdout


def test_foreign_file_fp16_int8_dynamic_batch_for_tensorrt(wild: dict, tmp_path: Path,
                                                           capsys) -> None:
    path, _ = wild["plain"]
    out = tmp_path / "art"
    code, _, err = cli(capsys, "export", str(path), "--mean", MEAN, "--std", STD,
                       "--target", "tensorrt", "--int8", "--calib-data", "random", "--fp16",
                       "--dynamic-batch", "-o", str(out))
    assert code == 0, err
    report = json.loads((out / "export.json").read_text())
    assert sorted(report["files"]) == ["model.fp16.onnx", "model.int8.onnx", "model.onnx"]
    assert report["int8"]["tensorrt_checks"]["passed"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.fp16.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = np.zeros((3, 3, RES, RES), np.float32)
    assert session.run(None, {"input": x})[0].shape == (3, 10)


def test_module_source_python_api(tmp_path: Path) -> None:
    from edgecnn.export import ExportSpec, ModuleSource, PruneSpec, export

    net = _net()
    res = export(ExportSpec(ModuleSource(net, resolution=RES, mean=(0.5,) * 3, std=(0.25,) * 3,
                                         classes=tuple("abcdefghij"), name="mine"),
                            prune=PruneSpec(0.3), output=str(tmp_path / "m")))
    assert res.report["source"] == "module" and res.report["model"] == "mine"
    assert res.report["macs"]["after"] <= 0.7 * res.report["macs"]["before"]
    assert [net.features[i].out_channels for i in (0, 4, 8)] == [8, 16, 32], \
        "the caller's module is not pruned in place"
    props = {p.key: p.value for p in onnx.load(str(res.path / "model.onnx")).metadata_props}
    assert json.loads(props["edgecnn.classes"])[0] == "a"


def test_import_path_resolves_like_a_zoo_name(tmp_path: Path) -> None:
    """info and the registry: channels from the callable's argument, or from the model when
    it takes none; the recorded name is the path."""
    from edgecnn.registry import create_model, get_spec

    assert get_spec("tests.usermodels:gray_cnn").in_chans == 1  # no in_chans argument
    model = create_model("tests.usermodels:small_cnn", num_classes=4, in_chans=1)
    assert model.config["name"] == "tests.usermodels:small_cnn"
    assert model(torch.zeros(2, 1, RES, RES)).shape == (2, 4)
    proc = run_cli("info", "tests.usermodels:small_cnn", "--resolution", str(RES), check=True)
    assert "tests.usermodels:small_cnn" in proc.stdout and "MACs" in proc.stdout


@pytest.mark.parametrize("make, message", [
    (lambda s: s.PruneSpec(1.5), "prune ratio must be in (0, 1)"),
    (lambda s: s.PruneSpec(0.5, scope="local"), "prune scope"),
    (lambda s: s.Int8Spec("digits", calib_samples=0), "calibration samples"),
    (lambda s: s.Int8Spec("digits", min_agreement=101), "min agreement"),
    (lambda s: s.Int8Spec("random", qat_epochs=1), "needs real data"),
    (lambda s: s.OnnxSource("a.onnx", mean=(0.5, 0.5, 0.5)), "--mean and --std go together"),
    (lambda s: s.ExportSpec(s.OnnxSource("a.onnx"), prune=s.PruneSpec(0.5)).check(),
     "cannot be pruned"),
    (lambda s: s.ExportSpec(s.ZooSource("lenet5"), target="cpu-x68").check(), "cpu-x86?"),
    (lambda s: s.ExportSpec(s.ZooSource("lenet5"), int8=s.Int8Spec("random"),
                            opset=11, target="jetson-nano").check(), "int8 needs opset >= 13"),
    (lambda s: s.ExportSpec("lenet5"), "an export source is"),
])
def test_each_spec_part_checks_itself(make, message: str) -> None:
    """One-line errors from the spec itself, before any model or file is touched."""
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export import spec

    with pytest.raises(EdgeCNNError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        make(spec)
