"""`runtime="fastest"` (runtime/fastest.py): measured once, cached by machine, runtime
versions and file hash, written atomically, measured again when the key goes stale. A model
defined here, exported by plain torch.onnx (not by edgecnn); real ONNX Runtime and OpenVINO."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 4)).eval()
    path = tmp_path_factory.mktemp("fastest") / "user.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False,
                      input_names=["x"], output_names=["y"])
    return path


def _choose(path: Path, cache: Path) -> tuple[str, dict, str]:
    from edgecnn.runtime.fastest import Plan, choose

    from edgecnn.runtime.loader import cpu_runners

    return choose(path, {}, cpu_runners(), cache=cache,
                  plan=Plan(rounds=1, block_s=0.02, settle_s=0.0))


def test_load_fastest_measures_once_then_uses_the_cache(
        onnx_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecnn.runtime import load

    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    with load(onnx_file, runtime="fastest", mean=(0.5,) * 3, std=(0.5,) * 3) as first:
        assert first.selection.startswith("fastest: measured onnxruntime 1 thread")
        assert "openvino" in first.selection and "cached in" in first.selection
        chosen, threads = first.runtime, first.runner.options.threads
    (entry,) = (tmp_path / "cache" / "fastest").glob("*.json")
    data = json.loads(entry.read_text())
    assert data["key"]["cores"] == os.cpu_count() and len(data["key"]["sha256"]) == 64
    assert {m["runtime"] for m in data["measured"]} == {"onnxruntime", "openvino"}
    assert data["choice"] == min(data["measured"], key=lambda m: m["p50_ms"])
    assert (data["choice"]["runtime"], data["choice"]["threads"]) == (chosen, threads)
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]
    stamp = entry.stat().st_mtime_ns
    with load(onnx_file, runtime="fastest", mean=(0.5,) * 3, std=(0.5,) * 3) as second:
        assert second.runtime == chosen and "cached in" in second.selection
        assert "measured " + data["measured_utc"] in second.selection  # not measured again
    assert entry.stat().st_mtime_ns == stamp


def test_stale_or_damaged_cache_is_measured_again(onnx_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _choose(onnx_file, cache)
    (entry,) = cache.glob("*.json")
    data = json.loads(entry.read_text())
    data["key"]["runtimes"]["onnxruntime"] = "0.0.1"  # as if measured with another version
    entry.write_text(json.dumps(data))
    line = _choose(onnx_file, cache)[2]
    assert line.startswith("fastest: measured") and "another machine, runtime or file" in line
    assert json.loads(entry.read_text())["key"]["runtimes"]["onnxruntime"] != "0.0.1"
    data = json.loads(entry.read_text())
    data["key"]["sha256"] = "0" * 64  # the file was re-exported since
    entry.write_text(json.dumps(data))
    assert _choose(onnx_file, cache)[2].startswith("fastest: measured")
    entry.write_text('{"format": "edgecnn-fastest/1", "key": ')  # truncated by a crash
    assert _choose(onnx_file, cache)[2].startswith("fastest: measured")
    assert json.loads(entry.read_text())["format"] == "edgecnn-fastest/1"
    assert "cached in" in _choose(onnx_file, cache)[2]  # and now a hit again


def test_user_threads_are_kept_and_an_unwritable_cache_still_loads(onnx_file: Path,
                                                                    tmp_path: Path) -> None:
    from edgecnn.runtime.fastest import Plan, choose

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    from edgecnn.runtime.loader import cpu_runners

    runtime, options, line = choose(onnx_file, {"threads": 1}, cpu_runners(),
                                    cache=blocked / "fastest",
                                    plan=Plan(rounds=1, block_s=0.02, settle_s=0.0))
    assert options == {"threads": 1} and runtime in ("onnxruntime", "openvino")
    assert "onnxruntime 1 thread" in line and "2 threads" not in line
    assert "not cached: " in line and blocked.read_text() == "not a directory"
