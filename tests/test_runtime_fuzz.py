"""Fuzzing the runtime's doors with hypothesis: model files (random bytes, truncated and
corrupted real models, hostile metadata), batches of random shapes and dtypes, random image
arrays. The interpreter must never crash and only EdgeCNNError may escape.

Everything runs in this process on purpose: a crash in native code (ONNX Runtime, OpenVINO)
would kill the test worker, which fails the run loudly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime import load, read_onnx
from tests.runtime_artifacts import export_artifact

RES = 32
# 60 examples a test in CI (derandomized: the same inputs every run); set
# EDGECNN_FUZZ_EXAMPLES=2000 for a longer hunt by hand.
FUZZ = settings(max_examples=int(os.environ.get("EDGECNN_FUZZ_EXAMPLES", "60")), deadline=None,
                derandomize="EDGECNN_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_artifact(tmp_path_factory.mktemp("fuzz") / "squeezenet1_1",  # small, fast
                           name="squeezenet1_1", resolution=RES, dynamic_batch=True)


@pytest.fixture(scope="module")
def model(artifact: Path):  # noqa: ANN201
    return load(artifact, runtime="onnxruntime", threads=1)


def _load_and_run(path: Path, runtime: str = "onnxruntime") -> None:
    """Load whatever the file is; if it loads, run a valid batch through it."""
    try:
        model = load(path, runtime=runtime, mean=(0.5,) * 3, std=(0.5,) * 3, resolution=RES)
    except EdgeCNNError as exc:
        assert "\n" not in str(exc)
        return
    batch = np.zeros((1, *model.preprocess.input_shape), np.float32)
    try:
        model.infer(batch)
    except EdgeCNNError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_as_a_model_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(EdgeCNNError):
        load(path)


@FUZZ
@given(data=st.data())
def test_truncated_and_corrupted_models(tmp_path: Path, artifact: Path, data: st.DataObject
                                        ) -> None:
    """A cut (an interrupted download) or flipped bytes anywhere in a real model."""
    original = bytearray(artifact.read_bytes())
    # Most of the file is weights; aim half the flips at the graph structure after them.
    kind = data.draw(st.sampled_from(["cut", "flip", "flip-tail"]))
    if kind == "cut":
        blob = bytes(original[:data.draw(st.integers(0, len(original) - 1))])
    else:
        low = len(original) - 4000 if kind == "flip-tail" else 0
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(max(0, low), len(original) - 1))
            original[i] = data.draw(st.integers(0, 255))
        blob = bytes(original)
    path = tmp_path / "model.onnx"
    path.write_bytes(blob)
    _load_and_run(path, data.draw(st.sampled_from(["onnxruntime", "openvino"])))


@FUZZ
@given(props=st.dictionaries(
    st.sampled_from(["edgecnn.format", "edgecnn.model", "edgecnn.alpha", "edgecnn.resolution",
                     "edgecnn.in_chans", "edgecnn.mean", "edgecnn.std", "edgecnn.classes",
                     "edgecnn.precision", "edgecnn.trained", "edgecnn.layout",
                     "edgecnn.extra.note"]),
    st.one_of(st.text(max_size=40), st.sampled_from(
        ["edgecnn-onnx/1", "[0.5, 0.5, 0.5]", "[1e309]", "[]", '["a"]', "3", "-1", "nan",
         "__import__('os').system('echo pwned')", "../../etc/passwd", "true", "NHWC"]))))
def test_hostile_metadata_is_rejected_or_harmless(tmp_path: Path, artifact: Path,
                                                  props: dict[str, str]) -> None:
    """Metadata is parsed as JSON/numbers only and never used as a path or code."""
    import onnx

    proto = onnx.load(str(artifact))
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path = tmp_path / "model.onnx"
    onnx.save_model(proto, str(path))
    try:
        model = load(path)
    except EdgeCNNError:
        return
    batch = np.zeros((1, *model.preprocess.input_shape), np.float32)
    try:
        preds = model.predict(np.full((40, 40, 3), 128, np.uint8))
    except EdgeCNNError:
        return
    assert len(preds) == 1 and model.infer(batch).shape == (1, 10)


@FUZZ
@given(batch=hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=40),
    elements=None, fill=st.just(0)))
def test_infer_with_random_shapes_and_dtypes(model, batch: np.ndarray) -> None:  # noqa: ANN001
    valid = (batch.dtype == np.float32 and batch.ndim == 4 and batch.shape[0] >= 1
             and batch.shape[1:] == (3, RES, RES))
    if valid:
        assert model.infer(batch).shape == (batch.shape[0], 10)
    else:
        with pytest.raises(EdgeCNNError):
            model.infer(batch)


@FUZZ
@given(image=hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.float32, np.int16]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=24)))
def test_predict_with_random_arrays(model, image: np.ndarray) -> None:  # noqa: ANN001
    try:
        preds = model.predict(image, topk=3)
    except EdgeCNNError:
        return
    assert all(len(p.ids) == 3 and 0 <= p.prob <= 1 for p in preds)


@FUZZ
@given(data=st.binary(min_size=1, max_size=2048))
def test_random_bytes_as_an_image(tmp_path: Path, model, data: bytes) -> None:  # noqa: ANN001
    path = tmp_path / "image.jpg"
    path.write_bytes(data)
    try:  # Pillow reads some header-less formats (TGA), so a few byte strings are images
        assert len(model.predict(path)) == 1
    except EdgeCNNError:
        pass


def test_the_onnx_reader_agrees_with_onnx_on_real_files(artifact: Path) -> None:
    import onnx

    proto = onnx.load(str(artifact))
    info = read_onnx(artifact)
    assert info.ir_version == proto.ir_version
    assert info.opsets == {o.domain: o.version for o in proto.opset_import}
    assert info.metadata_props == {p.key: p.value for p in proto.metadata_props}
    assert [t.name for t in info.inputs] == [i.name for i in proto.graph.input]
    assert info.inputs[0].shape == (None, 3, RES, RES)
    assert info.outputs[0].name == proto.graph.output[0].name
    assert info.op_types == {n.op_type for n in proto.graph.node}
