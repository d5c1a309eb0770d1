"""`edgecnn export`: the artifact, its metadata and parity, targets, checkpoints, bad input.

The command runs for real (a subprocess for the fresh-install case and the race; the CLI's
main() in-process elsewhere, to keep the suite fast); ONNX Runtime and OpenVINO read what
it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.export.spec import ExportSpec, ZooSource

from tests.conftest import ROOT, run_cli
from tests.export_helpers import cli, lenet_ckpt, mobilenet_ckpt  # noqa: F401  (fixtures)

pytest.importorskip("onnxruntime")


def props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_fresh_install_command_exports_untrained_mobilenet(tmp_path: Path) -> None:
    """The README's command, as a user runs it: no checkpoint, one warning line."""
    proc = run_cli("export", "mobilenet", "--alpha", "0.5", "--resolution", "64",
                   cwd=tmp_path, check=True)
    art = tmp_path / "exports" / "mobilenet-a0.5-r64"
    assert sorted(p.name for p in art.iterdir()) == ["export.json", "model.onnx"]
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "untrained" in warnings[0]
    assert "Traceback" not in proc.stderr
    report = json.loads((art / "export.json").read_text())
    assert report["trained"] is False and report["alpha"] == 0.5
    meta = props(art / "model.onnx")
    assert meta["edgecnn.trained"] == "false" and meta["edgecnn.precision"] == "fp32"
    assert not list(art.parent.glob(".*")), "no temporary directory left behind"


def test_export_without_openvino_checks_onnx_runtime_and_says_so(tmp_path: Path, capfd,
                                                                 monkeypatch) -> None:
    """`pip install edgecnn[torch]` has no OpenVINO (an optional runtime): export must not
    need it. Parity is judged in ONNX Runtime alone, and the summary and export.json say
    OpenVINO was not checked. A None in sys.modules is what Python's import finds when a
    package is absent: `import openvino` raises ImportError."""
    from tests.conftest import run_main

    monkeypatch.setitem(sys.modules, "openvino", None)
    out = tmp_path / "art"
    code, stdout, err = run_main(["export", "mobilenet", "--alpha", "0.25", "--resolution",
                                  "32", "--num-classes", "10", "--int8", "--calib-data",
                                  "random", "--calib-samples", "8", "-o", str(out)], capfd)
    assert code == 0 and "Traceback" not in err, err
    assert "parity vs PyTorch (ONNX Runtime; OpenVINO not installed, not checked)" in stdout
    report = json.loads((out / "export.json").read_text())
    assert all(p["ok"] and p["openvino_max_abs"] is None and p["openvino_error"] is None
               and p["onnxruntime_max_abs"] < 1e-4 for p in report["parity"])
    assert set(report["int8"]["verdict"]["speedups"]) == {"onnxruntime"}  # and its timing


def test_artifact_is_one_checked_self_describing_file(tmp_path: Path) -> None:
    from edgecnn.export import export
    from edgecnn.metadata import ArtifactMetadata

    res = export(ExportSpec(ZooSource("squeezenet1_1", resolution=64, num_classes=10),
                            dynamic_batch=True, output=str(tmp_path / "a")))
    path = res.path / "model.onnx"
    assert [p.name for p in res.path.iterdir() if p.suffix == ".data"] == []
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version <= 9  # cpu-x86's ceiling; ONNX Runtime 1.31 reads <= 13
    assert not [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    meta = ArtifactMetadata.from_props(props(path))
    assert (meta.model, meta.resolution, meta.in_chans, len(meta.classes)) == \
        ("squeezenet1_1", 64, 3, 10)
    assert meta.input_name == proto.graph.input[0].name and meta.layout == "NCHW"
    assert meta.edgecnn_version and meta.trained is False
    # dynamic batch: ONNX Runtime runs a batch of 3
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": np.zeros((3, 3, 64, 64), np.float32)})[0]
    assert out.shape == (3, 10)
    report = res.report
    assert {p["inputs"] for p in report["parity"]} == {"random"}
    for p in report["parity"]:
        assert p["ok"] and p["onnxruntime_max_abs"] < 1e-4 and p["openvino_max_abs"] < 1e-4
        assert p["logits_max_abs"] > 1e-2, "logits vanish: parity would be vacuous"
    f = report["files"]["model.onnx"]
    assert f["bytes"] == path.stat().st_size and 0 < f["zstd_bytes"] < f["bytes"]
    assert report["params"]["after"] > 0 and report["macs"]["after"] > 0


def test_checkpoint_export_rebuilds_from_checkpoint_alone(tmp_path: Path, capsys,
                                                          lenet_ckpt: Path) -> None:  # noqa: F811
    from edgecnn.checkpoint import file_sha256, load_checkpoint

    out = tmp_path / "lenet"
    code, stdout, err = cli(capsys, "export", str(lenet_ckpt), "-o", str(out))
    assert code == 0, err
    assert "warning" not in err  # a trained export has nothing to warn about
    meta = props(out / "model.onnx")
    data = load_checkpoint(lenet_ckpt)
    assert meta["edgecnn.trained"] == "true"
    assert meta["edgecnn.source_checkpoint_sha256"] == file_sha256(lenet_ckpt)
    assert json.loads(meta["edgecnn.classes"]) == list(data["classes"])
    assert json.loads(meta["edgecnn.mean"]) == pytest.approx(list(data["mean"]))
    assert meta["edgecnn.dataset"] == "digits"
    report = json.loads((out / "export.json").read_text())
    # parity on real images of the checkpoint's data set, not only on noise
    assert {p["inputs"] for p in report["parity"]} == {"random", "digits"}
    assert all(p["ok"] for p in report["parity"])


@pytest.mark.parametrize("flag", [["--alpha", "0.5"], ["--resolution", "64"],
                                  ["--num-classes", "5"]])
def test_flag_contradicting_checkpoint_is_an_error(tmp_path: Path, capsys, flag: list[str],
                                                   mobilenet_ckpt: Path) -> None:  # noqa: F811
    code, _, err = cli(capsys, "export", str(mobilenet_ckpt), *flag, "-o", str(tmp_path / "x"))
    assert code == 2 and "contradicts the checkpoint" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_flag_agreeing_with_checkpoint_is_fine(tmp_path: Path, capsys,
                                               mobilenet_ckpt: Path) -> None:  # noqa: F811
    code, _, err = cli(capsys, "export", str(mobilenet_ckpt), "--alpha", "0.25",
                       "--resolution", "32", "-o", str(tmp_path / "x"))
    assert code == 0, err


@pytest.mark.parametrize("target,opset,ir", [("cpu-x86", 17, 9), ("cpu-arm", 17, 9),
                                             ("tensorrt", 17, 9), ("jetson-orin", 17, 9),
                                             ("jetson-nano", 13, 7)])
def test_targets_set_opset_and_ir_ceiling(tmp_path: Path, target: str, opset: int,
                                          ir: int) -> None:
    from edgecnn.export import export, load_target

    t = load_target(target)
    assert t.opset == opset and t.max_ir_version == ir
    res = export(ExportSpec(ZooSource("mobilenet", alpha=0.25, resolution=32, num_classes=10),
                            target=target, output=str(tmp_path / target)))
    proto = onnx.load(str(res.path / "model.onnx"))
    assert proto.ir_version <= ir
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    assert props(res.path / "model.onnx")["edgecnn.extra.target"] == target


def test_target_recipe_by_path_and_its_errors(tmp_path: Path) -> None:
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export.targets import RECIPE_DIR, list_targets, load_target

    assert {"cpu-x86", "cpu-arm", "tensorrt", "jetson-orin", "jetson-nano"} <= \
        set(list_targets())
    custom = tmp_path / "mine.yaml"
    custom.write_text((RECIPE_DIR / "tensorrt.yaml").read_text().replace(
        "name: tensorrt", "name: mine").replace("opset: 17", "opset: 16"))
    assert load_target(str(custom)).opset == 16
    with pytest.raises(EdgeCNNError, match="did you mean cpu-x86"):
        load_target("cpu-x68")
    custom.write_text("name: x\nprecisions: [fp32]\nopset: 17\nmax_ir_version: 9\nopste: 3\n")
    with pytest.raises(EdgeCNNError, match="unknown keys"):
        load_target(str(custom))


def test_fp16_for_gpu_targets(tmp_path: Path, capsys) -> None:
    out = tmp_path / "h"
    code, _, err = cli(capsys, "export", "mobilenet", "--alpha", "0.25", "--resolution", "32",
                       "--num-classes", "10", "--fp16", "--target", "tensorrt", "-o", str(out))
    assert code == 0, err
    proto = onnx.load(str(out / "model.fp16.onnx"))
    elem = onnx.TensorProto
    assert proto.graph.input[0].type.tensor_type.elem_type == elem.FLOAT  # io stays fp32
    assert proto.graph.output[0].type.tensor_type.elem_type == elem.FLOAT
    assert any(t.data_type == elem.FLOAT16 for t in proto.graph.initializer)
    assert props(out / "model.fp16.onnx")["edgecnn.precision"] == "fp16"
    report = json.loads((out / "export.json").read_text())
    assert report["fp16"]["max_abs_vs_fp32"] < 0.05
    assert report["files"]["model.fp16.onnx"]["bytes"] < 0.6 * report["files"]["model.onnx"][
        "bytes"]


# The export-specific refusals; the ones every command shares are in tests/test_bad_inputs.py.
BAD = [
    (["nosuchnet"], "unknown model"),
    (["mobilenet", "--prune", "0"], "--prune: expected a number in (0, 1)"),
    (["mobilenet", "--fp16"], "does not run fp16"),
    (["mobilenet", "--finetune-epochs", "1"], "needs --prune"),
    (["mobilenet", "--max-drop", "0.5"], "applies to --int8 only"),
    (["mobilenet", "--calib-data", "digits"], "applies to --int8 only"),
    (["mobilenet", "--prune", "0.5", "--finetune-epochs", "1"], "needs a checkpoint"),
    (["mobilenet", "--int8", "--calib-data", "nosuchdata"], "unknown dataset"),
    (["mobilenet", "--labels", "x.txt"], "applies to ONNX files only"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, capsys, args: list[str],
                                                      message: str) -> None:
    out = tmp_path / "out"
    code, _, err = cli(capsys, "export", *args, "--resolution", "32", "-o", str(out))
    lines = [line for line in err.splitlines() if not line.startswith("edgecnn: warning")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_bad_checkpoints(tmp_path: Path, capsys, lenet_ckpt: Path) -> None:  # noqa: F811
    import torch

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(lenet_ckpt.read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    data = torch.load(lenet_ckpt, weights_only=True)
    data["model"]["name"] = "mobilenet"  # LeNet weights claiming to be a MobileNet
    other = tmp_path / "other.pt"
    torch.save(data, other)
    for path, message in ((corrupt, "not a readable"), (foreign, "not an edgecnn checkpoint"),
                          (other, "weights do not fit"), (tmp_path / "missing.pt", "no such")):
        code, _, err = cli(capsys, "export", str(path), "-o", str(tmp_path / "o"))
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_force_and_force_replaces(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    args = ["export", "lenet5", "-o", str(out)]
    assert cli(capsys, *args)[0] == 0
    before = (out / "model.onnx").read_bytes()
    (out / "model.onnx").write_bytes(b"marker")  # to see what a refusal keeps
    code, _, err = cli(capsys, *args)
    assert code == 2 and "already exists; use --force" in err
    assert (out / "model.onnx").read_bytes() == b"marker"
    assert cli(capsys, *args, "--force")[0] == 0
    assert (out / "model.onnx").read_bytes() == before
    # --force never replaces a folder that is not an export
    home = tmp_path / "notanexport"
    home.mkdir()
    (home / "precious.txt").write_text("keep")
    code, _, err = cli(capsys, "export", "lenet5", "-o", str(home), "--force")
    assert code == 2 and "not an edgecnn export" in err
    assert (home / "precious.txt").read_text() == "keep"


def test_two_exports_race_for_one_directory(tmp_path: Path) -> None:
    out = tmp_path / "race"
    cmd = [sys.executable, "-m", "edgecnn", "export", "lenet5", "-o", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser or "another export" in loser
    assert "Traceback" not in loser
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")), full_check=True)
    assert json.loads((out / "export.json").read_text())["model"] == "lenet5"
    assert [p.name for p in tmp_path.iterdir()] == ["race"], "no temporary directory left"


def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """An error after files were written (here: the parity check) removes the temp dir."""
    from edgecnn.errors import EdgeCNNError
    from edgecnn.export import export, parity

    # every parity check fails, as a broken exporter's would
    monkeypatch.setattr(parity.ParityResult, "ok", property(lambda self: False))
    with pytest.raises(EdgeCNNError, match="parity check failed"):
        export(ExportSpec(ZooSource("lenet5"), output=str(tmp_path / "x")))
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_dir_of_a_killed_export_is_removed(tmp_path: Path) -> None:
    from edgecnn.export import export

    stale = tmp_path / ".x.tmp-999999999-abc"  # no such PID
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half")
    export(ExportSpec(ZooSource("lenet5"), output=str(tmp_path / "x")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_int8_and_fp16_in_one_artifact(tmp_path: Path, capsys) -> None:
    """What Jetson users run: one artifact holding fp32, fp16 and int8 (issue 13)."""
    out = tmp_path / "all"
    code, stdout, err = cli(capsys, "export", "lenet5", "--target", "jetson-orin", "--int8",
                            "--calib-data", "random", "--fp16", "-o", str(out))
    assert code == 0, err
    precisions = {props(out / name)["edgecnn.precision"]: name for name in
                  ("model.onnx", "model.fp16.onnx", "model.int8.onnx")}
    assert precisions == {"fp32": "model.onnx", "fp16": "model.fp16.onnx",
                          "int8": "model.int8.onnx"}
    report = json.loads((out / "export.json").read_text())
    assert report["options"]["fp16"] is True and report["options"]["int8"]["calib_data"] == \
        "random"
    assert "model.fp16.onnx" in stdout and "model.int8.onnx" in stdout


def test_commit_puts_the_previous_export_back_when_the_final_rename_fails(
        tmp_path: Path) -> None:
    """--force over an earlier export, and the new directory is gone at the last step (a
    tmp cleaner, a full disk's rollback): the earlier export is back, whole, and the error is
    one line."""
    import shutil

    from edgecnn.errors import EdgeCNNError
    from edgecnn.export.artifact import ArtifactDir

    dest = tmp_path / "art"
    with ArtifactDir(dest) as first:
        first.write_json("export.json", {"run": "earlier"})
        first.commit()
    with ArtifactDir(dest, force=True) as second:
        second.write_json("export.json", {"run": "later"})
        second.files.clear()
        shutil.rmtree(second.tmp)  # the final rename now fails for real (no source)
        with pytest.raises(EdgeCNNError, match="cannot move the export"):
            second.commit()
    assert json.loads((dest / "export.json").read_text()) == {"run": "earlier"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no .old or .tmp left


def test_ctrl_c_between_the_commits_renames_waits_for_the_second(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """--force over an earlier export, and a Ctrl-C (a real SIGINT to this process) lands
    right after the earlier artifact is moved aside: the new one still goes into place, the
    earlier one is removed, and only then does the interrupt arrive."""
    import os
    import signal

    from edgecnn.export import artifact as artifact_mod
    from edgecnn.export.artifact import ArtifactDir

    dest = tmp_path / "art"
    with ArtifactDir(dest) as first:
        first.write_json("export.json", {"run": "earlier"})
        first.commit()
    rename = os.rename

    def rename_then_ctrl_c(src, dst):  # noqa: ANN001, ANN202
        rename(src, dst)
        if ".old-" in str(dst):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(artifact_mod.os, "rename", rename_then_ctrl_c)
    # Python's own Ctrl-C handler, as a command has it (a pytest-xdist worker may not)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), ArtifactDir(dest, force=True) as second:
            second.write_json("export.json", {"run": "later"})
            second.commit()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, before)
    assert json.loads((dest / "export.json").read_text()) == {"run": "later"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no .old or .tmp left
