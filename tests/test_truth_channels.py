"""Channel alignment (issue 24): info, export and sweep warn when a width multiplier leaves
channel counts that are not multiples of 8, with the cost; --round-channels 8 is the user's
choice (torchvision's _make_divisible); the paper's widths stay the default."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from edgecnn.cli.main import main
from edgecnn.layers.conv import make_divisible
from edgecnn.profile import profile_model


def _widths(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[list[int], str]:
    assert main(["info", "mobilenet", "--alpha", "0.35", "--resolution", "64", "--json",
                 *extra]) == 0
    out = capsys.readouterr()
    layers = json.loads(out.out)["layers"]
    return [l["output_shape"][1] for l in layers if l["type"] == "Conv2d"], out.err


def test_info_warns_with_the_cost_and_rounding_is_opt_in(
        capsys: pytest.CaptureFixture[str]) -> None:
    paper, err = _widths(capsys)
    assert sorted(set(paper)) == [11, 22, 44, 89, 179, 358]  # the paper's truncation stays
    assert "not multiples of 8 (11/22/44/89/179/358)" in err and "3x the latency" in err
    assert "--round-channels 8" in err
    rounded, err = _widths(capsys, "--round-channels", "8")
    assert err == "" and all(c % 8 == 0 for c in rounded)
    base = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    expected = [make_divisible(c * 0.35, 8) for c in base]
    assert sorted(set(rounded)) == sorted(set(expected))
    assert main(["info", "mobilenet", "--alpha", "0.25"]) == 0  # aligned: no warning
    assert "warning" not in capsys.readouterr().err
    assert main(["info", "resnet18", "--round-channels", "8"]) == 2  # not its family


def test_export_warns_and_rounds_on_request(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = ["export", "mobilenet", "--alpha", "0.35", "--resolution", "32"]
    assert main([*args, "-o", str(tmp_path / "paper")]) == 0
    assert "not multiples of 8" in capsys.readouterr().err
    assert main([*args, "--round-channels", "8", "-o", str(tmp_path / "r8")]) == 0
    assert "not multiples of 8" not in capsys.readouterr().err
    graph = onnx.load(str(tmp_path / "r8" / "model.onnx")).graph
    weights = {t.name: t.dims for t in graph.initializer}
    convs = [weights[n.input[1]][0] for n in graph.node if n.op_type == "Conv"]
    assert convs and all(c % 8 == 0 for c in convs)
    prof = profile_model("mobilenet", alpha=0.35, resolution=32, round_channels=8)
    assert json.loads((tmp_path / "r8" / "export.json").read_text())["macs"]["after"] == prof.macs
