"""The TensorRT runner without TensorRT or a GPU: everything that can be checked offline.

What these tests cannot reach (engine build, deserialization, execute_async_v3) is listed in
edgecnn/runtime/trt_runner.py's docstring; deploy/jetson/ runs it on a device.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime import load, read_onnx
from edgecnn.runtime.trt_runner import (EngineCache, GpuInfo, TrtOptions, TrtRunner,
                                        builder_flags, check_recipe_version,
                                        default_cache_dir, engine_key,
                                        import_cudart, import_tensorrt, profile_shapes)
from tests.runtime_artifacts import export_artifact

RES = 32
NO_TRT = importlib.util.find_spec("tensorrt") is None
H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")
ORIN = GpuInfo("Orin", "8.7")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A static and a dynamic-batch fp32 artifact, and an int8 Q/DQ one made with ONNX
    Runtime's quantizer (symmetric, as TensorRT's explicit quantization wants)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    root = tmp_path_factory.mktemp("trt")
    mobilenet = dict(name="mobilenet", alpha=0.25, resolution=RES)
    out = {"static": export_artifact(root / "static", **mobilenet),
           "dynamic": export_artifact(root / "dynamic", **mobilenet, dynamic_batch=True)}

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((1, 3, RES, RES),
                                                                dtype=np.float32)}
                                 for _ in range(4)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    out["int8"] = root / "static" / "model.int8.onnx"
    quantize_static(str(out["static"]), str(out["int8"]), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, extra_options={"ActivationSymmetric": True})
    return out


@pytest.mark.skipif(not NO_TRT, reason="TensorRT is installed here")
def test_missing_tensorrt_says_what_to_install(models: dict[str, Path]) -> None:
    for call in (lambda: load(models["static"], runtime="tensorrt"),
                 lambda: load(models["static"].parent, runtime="tensorrt", device="cuda"),
                 import_tensorrt,
                 lambda: TrtRunner(models["static"], "cuda").activate()):
        with pytest.raises(EdgeCNNError, match=r"^tensorrt is not installed: pip install "
                                               r"tensorrt cuda-python \(on Jetson"):
            call()


@pytest.mark.skipif(importlib.util.find_spec("cuda") is not None,
                    reason="cuda-python is installed here")
def test_missing_cuda_python_says_what_to_install() -> None:
    with pytest.raises(EdgeCNNError, match="cuda-python is not installed.*pip install "
                                           "cuda-python"):
        import_cudart()


def test_onnxruntime_tensorrt_provider_needs_onnxruntime_gpu(models: dict[str, Path]) -> None:
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the TensorRT provider")
    with pytest.raises(EdgeCNNError, match="no TensorrtExecutionProvider: pip install "
                                           "onnxruntime-gpu"):
        load(models["static"], runtime="onnxruntime", device="cuda", provider="tensorrt")


def test_device_and_option_errors(models: dict[str, Path]) -> None:
    with pytest.raises(EdgeCNNError, match="tensorrt runs on NVIDIA GPUs"):
        TrtRunner(models["static"], "cpu")
    with pytest.raises(EdgeCNNError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
        TrtRunner(models["static"], "cuda:one")
    assert TrtRunner(models["static"], "cuda:1").device_id == 1
    with pytest.raises(EdgeCNNError, match="min_batch <= opt_batch <= max_batch"):
        TrtOptions(min_batch=4, opt_batch=2)
    with pytest.raises(EdgeCNNError, match="optimization_level must be one of"):
        TrtOptions(optimization_level=7)
    with pytest.raises(EdgeCNNError, match="fp16 must be bool"):
        TrtOptions(fp16=1)  # type: ignore[arg-type]
    with pytest.raises(EdgeCNNError, match="unknown option 'fp32' for tensorrt"):
        TrtOptions.from_kwargs("tensorrt", {"fp32": True})
    runner = TrtRunner(models["dynamic"], "cuda", TrtOptions(max_batch=8))
    with pytest.raises(EdgeCNNError, match="not active"):  # nothing reaches the GPU code
        runner.infer(np.zeros((1, 3, RES, RES), np.float32))
    assert not runner.is_active


def test_int8_means_explicit_quantization(models: dict[str, Path]) -> None:
    assert read_onnx(models["int8"]).has_qdq and not read_onnx(models["static"]).has_qdq
    assert TrtRunner(models["int8"], "cuda").int8  # switched on by the Q/DQ nodes
    assert not TrtRunner(models["static"], "cuda").int8
    with pytest.raises(EdgeCNNError, match="has no Q/DQ nodes: tensorrt int8 here is explicit"):
        TrtRunner(models["static"], "cuda", TrtOptions(int8=True))
    with pytest.raises(EdgeCNNError, match="is a Q/DQ \\(int8\\) graph; int8=False"):
        TrtRunner(models["int8"], "cuda", TrtOptions(int8=False))


def test_profile_shapes(models: dict[str, Path]) -> None:
    assert profile_shapes((1, 3, 224, 224), TrtOptions()) is None  # static: no profile
    assert profile_shapes((None, 3, 224, 224), TrtOptions()) == (
        (1, 3, 224, 224), (1, 3, 224, 224), (32, 3, 224, 224))
    options = TrtOptions(min_batch=2, opt_batch=8, max_batch=64)
    assert profile_shapes((None, 1, 28, 28), options) == (
        (2, 1, 28, 28), (8, 1, 28, 28), (64, 1, 28, 28))
    with pytest.raises(EdgeCNNError, match=r"except the batch, got \?x3x\?x\?"):
        profile_shapes((None, 3, None, None), TrtOptions())
    assert TrtRunner(models["dynamic"], "cuda", options).shapes == (
        (2, 3, RES, RES), (8, 3, RES, RES), (64, 3, RES, RES))
    assert TrtRunner(models["static"], "cuda", options).shapes is None


def test_engine_key_changes_with_everything_that_invalidates_an_engine() -> None:
    sha = "a" * 64
    shapes = profile_shapes((None, 3, 224, 224), TrtOptions())
    base = engine_key(H100, "10.7.0", sha, (), TrtOptions(), shapes)
    assert base == engine_key(H100, "10.7.0", sha, (), TrtOptions(), shapes)  # stable
    assert base.startswith("nvidia-h100-80gb-hbm3-sm90-trt10.7.0-")
    assert all(c.isalnum() or c in "-." for c in base)  # safe as a file name
    variants = [
        engine_key(ORIN, "10.7.0", sha, (), TrtOptions(), shapes),
        engine_key(GpuInfo(H100.name, "8.9"), "10.7.0", sha, (), TrtOptions(), shapes),
        engine_key(H100, "10.8.0", sha, (), TrtOptions(), shapes),
        engine_key(H100, "10.7.0", "b" * 64, (), TrtOptions(), shapes),
        engine_key(H100, "10.7.0", sha, ("INT8",), TrtOptions(), shapes),
        engine_key(H100, "10.7.0", sha, ("FP16", "INT8"), TrtOptions(), shapes),
        engine_key(H100, "10.7.0", sha, ("FP16",), TrtOptions(fp16=True), shapes),
        engine_key(H100, "10.7.0", sha, (), TrtOptions(max_batch=64), profile_shapes(
            (None, 3, 224, 224), TrtOptions(max_batch=64))),
        engine_key(H100, "10.7.0", sha, (), TrtOptions(), None),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert engine_key(GpuInfo("../../etc", "9.0"), "10", sha, (), TrtOptions(), None
                      ).startswith("etc-sm90-")  # a GPU name never escapes the cache dir


def test_int8_engines_are_built_with_fp16_allowed(models: dict) -> None:
    """INT8 + FP16 is how int8 runs on Jetson: the layers left in float run in fp16."""
    assert builder_flags(True, TrtOptions()) == ("FP16", "INT8")
    assert builder_flags(True, TrtOptions(fp16=False)) == ("INT8",)
    assert builder_flags(False, TrtOptions()) == ()
    assert builder_flags(False, TrtOptions(fp16=True)) == ("FP16",)
    assert TrtRunner(models["int8"], "cuda").flags == ("FP16", "INT8")
    assert TrtRunner(models["static"], "cuda").flags == ()


def test_a_tensorrt_older_than_the_recipe_is_one_line() -> None:
    check_recipe_version("10.3.0", "jetson-orin")
    check_recipe_version("10.0.1", "tensorrt")
    check_recipe_version("10.0.1", None)  # a file that is not an artifact: no recipe
    with pytest.raises(EdgeCNNError, match=r"^tensorrt 10.0.1 is older than the 10.3 the "
                       r"jetson-orin recipe this artifact was exported with needs$"):
        check_recipe_version("10.0.1", "jetson-orin")
    assert builder_flags(False, TrtOptions(), fp16_file=True) == ("FP16",)


def test_engine_cache_store_and_verified_load(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache")
    assert cache.load("k1") is None  # nothing yet
    engine = bytes(range(256)) * 100
    path = cache.store("k1", engine, {"onnx": "model.onnx"})
    assert path == tmp_path / "cache" / "k1.engine"
    assert cache.load("k1") == engine
    record = json.loads((tmp_path / "cache" / "k1.json").read_text())
    assert record["key"] == "k1" and record["onnx"] == "model.onnx"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k1.engine", "k1.json"]
    # a damaged engine (a crash mid-copy, a bad disk) is rebuilt, never handed to TensorRT
    damaged = bytearray(engine)
    damaged[1000] ^= 0xFF
    path.write_bytes(bytes(damaged))
    assert cache.load("k1") is None
    path.write_bytes(engine[:100])
    assert cache.load("k1") is None
    cache.store("k1", engine, {})
    (tmp_path / "cache" / "k1.json").write_text("{not json")
    assert cache.load("k1") is None
    # a record copied from another key does not vouch for this one
    cache.store("k2", engine, {})
    (tmp_path / "cache" / "k1.json").write_text((tmp_path / "cache" / "k2.json").read_text())
    assert cache.load("k1") is None and cache.load("k2") == engine


def test_cache_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EngineCache(tmp_path)
    a = cache.timing_cache_path(H100, "10.7.0")
    assert a.parent == tmp_path and a.name == "timing-nvidia-h100-80gb-hbm3-sm90-trt10.7.0.cache"
    assert cache.timing_cache_path(ORIN, "10.7.0") != a
    assert cache.timing_cache_path(H100, "10.8.0") != a
    monkeypatch.delenv("EDGECNN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "edgecnn" / "tensorrt"
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "tensorrt"
