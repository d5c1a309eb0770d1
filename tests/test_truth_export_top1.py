"""export prints top-1 for every stage it measured (issue 24): before pruning, after pruning,
after fine-tuning; without pruning, the fp32 file's; a checkpoint's held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecnn.cli.main import main
from tests.export_helpers import lenet_ckpt  # noqa: F401  (fixture)


def _line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("  top-1 on"))


def test_export_prints_each_stage_top1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       lenet_ckpt: Path) -> None:  # noqa: F811
    assert main(["export", str(lenet_ckpt), "-o", str(tmp_path / "plain")]) == 0
    report = json.loads((tmp_path / "plain" / "export.json").read_text())
    line = _line(capsys.readouterr().out)
    assert 0 <= report["top1_fp32"] <= 100
    assert line == f"  top-1 on digits (held out): model.onnx {report['top1_fp32']:.2f}%"

    assert main(["export", str(lenet_ckpt), "--prune", "0.3", "--finetune-epochs", "1",
                 "-o", str(tmp_path / "pruned")]) == 0
    pr = json.loads((tmp_path / "pruned" / "export.json").read_text())["pruning"]
    line = _line(capsys.readouterr().out)
    assert line == (f"  top-1 on digits (held out): before pruning {pr['top1_before']:.2f}%, "
                    f"after pruning {pr['top1_pruned']:.2f}%, after fine-tuning (1 epoch) "
                    f"{pr['top1_after']:.2f}%")
    # the stage a later figure belongs to, as predict and bench name it
    from edgecnn.runtime.stage import describe_stage

    assert describe_stage(tmp_path / "pruned" / "model.onnx") == (
        f"model.onnx: pruned 30% (structured), fine-tuned 1 epoch, fp32; the export measured "
        f"top-1 {pr['top1_after']:.2f}% on digits")
