"""bench shows the model's footprint as a device app sees it (issue 24): a fresh process
running edgecnn.runtime alone; the benchmark's own peak goes to the JSON only. With --data,
the footnote names the file and export stage each top-1 belongs to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.cli.main import main
from edgecnn.timing.footprint import app_footprint
from tests.runtime_artifacts import export_artifact


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("truth-fp")
    return export_artifact(root / "art", name="mobilenet", alpha=0.25, resolution=32).parent


def test_app_footprint_is_a_fresh_process(artifact: Path) -> None:
    fp = app_footprint(artifact, (1, 3, 32, 32), iters=5)
    # a runtime session and its arena are resident after load; the peak includes the
    # interpreter, numpy and ONNX Runtime, far below a process that holds torch
    assert 1 < fp["rss_mb_load"] < fp["rss_mb_peak"] < 400
    with pytest.raises(Exception, match="fresh process failed"):
        app_footprint(artifact / "nope.onnx", (1, 3, 32, 32), iters=1)


def test_bench_table_shows_the_app_footprint(artifact: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", str(artifact), "--iters", "16", "--rounds", "2", "--warmup", "2",
            "--no-progress"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rec,) = out["records"]
    assert 0 < rec["app_rss_mb_load"] < rec["app_rss_mb_peak"] < rec["rss_mb_peak"]
    cond = out["conditions"]
    assert set(cond["before"]) == set(cond["after"]) == {"load_1min", "cpu_mhz"}
    assert isinstance(cond["noisy"], list) and rec["noise_pct"] is not None
    assert main(args + ["--data", "digits"]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    assert "app MiB" in header and "app peak MiB" in header and "RSS" not in header
    assert "top-1 %" in header
    assert "top-1 % of " in text and "fp32 = model.onnx: as trained (not pruned), fp32" in text
