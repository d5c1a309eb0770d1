"""One table of bad inputs across every command: each is one line on stderr, exit status 2,
no traceback, and nothing in the working directory created, changed or removed.

The table runs in process, through `edgecnn.cli.main.main(argv)`, the function the console
command calls (stdout and stderr captured at the file descriptors, so what C libraries
write counts too): a traceback there is an exception that escapes main and fails the case,
and a Python warning the real command would print fails it as well. A few cases, one per
way of failing (argparse, an EdgeCNNError on the torch side, the torch-free runtime, an
OSError), run as the real command in a subprocess, to prove that the console entry turns
them into one line and exit status 2 as well.
The count of cases tried is printed at the end of the run (conftest's terminal summary).
Read-only and full disks: where the system lets the tests mount (root, as CI runs here), the
read-only directory is a read-only tmpfs (root writes through mode bits, not through `ro`)
and the full disk a 16 KiB tmpfs filled to the last byte; otherwise the read-only directory
is mode 555 (skipped as root without mount) and the full-disk cases are skipped.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_main

# One worker runs the table: the files it reads (an export among them) are made once.
pytestmark = pytest.mark.xdist_group("bad-inputs")
# Run as the real command (python -m edgecnn) in a subprocess; the rest in process.
CONSOLE = ("bench-bad-batch", "unknown-model", "predict-corrupt-model", "export-full-disk")

def mount_tmpfs(target: Path, options: str) -> bool:
    """A tmpfs at `target`, when this system allows it (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True)
    return proc.returncode == 0


def fill(directory: Path) -> None:
    """Write one file until the file system says it is full."""
    with open(directory / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            if f.tell() > 1 << 20:  # not a tiny tmpfs after all
                raise RuntimeError(f"{directory} does not fill up")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.onnx").write_bytes(b"\x08\x07not really onnx" * 10)
    (d / "corrupt.pt").write_bytes(b"PK\x03\x04 truncated zip")
    (d / "notimage.png").write_text("hello")
    (d / "recipe.yaml").write_text("model: [unclosed\n")
    (d / "empty_dir").mkdir()
    (d / "name\udcff.onnx").write_bytes(b"\x00\x01")  # a non-UTF-8 file name
    _valid_files(d)
    _foreign_onnx(d)  # image.onnx (a valid classifier), vector.onnx, labels3.txt
    ro, full = d / "readonly", d / "full"
    ro.mkdir()
    full.mkdir()
    mounted = []
    if mount_tmpfs(ro, "ro,size=16k"):
        mounted.append(ro)
    else:
        ro.chmod(0o555)
    if mount_tmpfs(full, "size=16k"):
        mounted.append(full)
        fill(full)
    yield {"dir": d, "full": full, "corrupt_onnx": d / "corrupt.onnx",
           "corrupt_pt": d / "corrupt.pt",
           "notimage": d / "notimage.png", "bad_yaml": d / "recipe.yaml",
           "empty_dir": d / "empty_dir", "non_utf8": d / "name\udcff.onnx", "readonly": ro,
           "ckpt": d / "ckpt.pt", "model": d / "art", "bomb": d / "bomb.png",
           "bad_key_yaml": d / "unknown-key.yaml", "truncated": d / "truncated.jpg",
           "image_onnx": d / "image.onnx", "vector_onnx": d / "vector.onnx",
           "labels3": d / "labels3.txt"}
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=True)


def _valid_files(d: Path) -> None:
    """Good inputs for the cases whose error comes after them: a digits lenet5 checkpoint
    (random weights), an artifact directory, a decompression bomb, a truncated JPEG."""
    import numpy as np
    from PIL import Image

    from edgecnn.checkpoint import save_checkpoint
    from edgecnn.registry import create_model
    from tests.runtime_artifacts import export_artifact
    from tests.test_runtime_photos import png_header_only

    model = create_model("lenet5", num_classes=10)
    config = dict(model.config)
    spec = {k: config.pop(k) for k in ("name", "alpha", "num_classes", "in_chans")}
    save_checkpoint({"model": {**spec, "kwargs": config}, "resolution": 32,
                     "mean": [0.5] * spec["in_chans"], "std": [0.25] * spec["in_chans"],
                     "classes": [str(i) for i in range(10)], "dataset": "digits",
                     "state_dict": model.state_dict(), "epoch": 1, "metrics": {}},
                    d / "ckpt.pt")
    export_artifact(d / "art", name="mobilenet", alpha=0.25, resolution=32)
    png_header_only(d / "bomb.png", 30000, 30000)
    (d / "unknown-key.yaml").write_text("model: lenet5\nflavour: vanilla\n")
    buf = d / "truncated.jpg"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf)
    buf.write_bytes(buf.read_bytes()[:200])


def _foreign_onnx(d: Path) -> None:
    """ONNX files from another tool: a 10-class image classifier (3x8x8 input) and a model
    whose input is a vector, not an image."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((10, 3, 8, 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["s"]), helper.make_node("Flatten", ["s"], ["y"])],
        "image", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                ir_version=8), str(d / "image.onnx"))
    m = numpy_helper.from_array(np.ones((16, 10), np.float32), "m")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "m"], ["y"])], "vector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [m])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                ir_version=8), str(d / "vector.onnx"))
    (d / "labels3.txt").write_text("cat\ndog\nbird\n")


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(root))] = "dir"
    return out


# (id, argv with {placeholders} from `files`, a fragment of the expected error line)
TABLE = [
    ("unknown-model", "info mobilenett", "unknown model"),
    ("alpha-zero", "info mobilenet --alpha 0", "alpha must be a positive number"),
    ("alpha-text", "export mobilenet --alpha big", "alpha must be a positive number"),
    ("resolution-small", "info resnet18 --resolution 8", "needs inputs of at least"),
    ("resolution-negative", "export mobilenet --resolution -3", "positive integer"),
    ("train-unknown-data", "train lenet5 --data nosuchset --out {dir}/t1", "nosuchset"),
    ("train-missing-folder", "train lenet5 --data imagefolder:{dir}/nope --out {dir}/t2",
     "nope"),
    ("train-empty-folder", "train lenet5 --data imagefolder:{empty_dir} --out {dir}/t3",
     "empty_dir"),
    ("train-zero-epochs", "train lenet5 --data digits --epochs 0 --out {dir}/t4", "epochs"),
    ("train-negative-lr", "train lenet5 --data digits --lr -1 --out {dir}/t5", "learning rate"),
    ("train-smoothing-1", "train lenet5 --data digits --label-smoothing 1 --out {dir}/t6",
     "label smoothing"),
    ("train-readonly-out", "train lenet5 --data digits --epochs 1 --out {readonly}/run",
     "readonly"),
    ("eval-missing", "eval {dir}/missing.pt --data digits", "missing.pt"),
    ("eval-corrupt", "eval {corrupt_pt} --data digits", "corrupt.pt"),
    ("eval-directory", "eval {empty_dir} --data digits", "empty_dir"),
    ("export-corrupt-ckpt", "export {corrupt_pt} -o {dir}/e1", "corrupt.pt"),
    ("export-prune-range", "export mobilenet --prune 1.0 -o {dir}/e2", "(0, 1)"),
    ("export-mean-on-zoo", "export mobilenet --mean 0.5,0.5,0.5 -o {dir}/e3",
     "applies to ONNX files only"),
    ("export-not-onnx", "export {corrupt_onnx} --mean 0.5,0.5,0.5 --std 0.2,0.2,0.2 "
     "-o {dir}/e7", "not a valid ONNX model"),
    ("export-onnx-no-image-input", "export {vector_onnx} --mean 0.5,0.5,0.5 --std 0.2,0.2,0.2"
     " -o {dir}/e8", "no image input"),
    ("export-onnx-mean-length", "export {image_onnx} --mean 0.5,0.5 --std 0.2,0.2 "
     "-o {dir}/e9", "expected R,G,B (3 numbers, or 1 for a gray model)"),
    ("export-onnx-no-preprocessing", "export {image_onnx} -o {dir}/e10", "--mean R,G,B"),
    ("export-onnx-labels-count", "export {image_onnx} --mean 0.5,0.5,0.5 --std 0.2,0.2,0.2 "
     "--labels {labels3} -o {dir}/e11", "3 labels for a model with 10 classes"),
    ("export-onnx-prune", "export {image_onnx} --mean 0.5,0.5,0.5 --std 0.2,0.2,0.2 "
     "--prune 0.5 -o {dir}/e12", "cannot be pruned"),
    ("export-import-path-missing", "export no_such_pkg.nets:small -o {dir}/e13",
     "'no_such_pkg.nets' does not import"),
    ("export-import-path-not-module", "export tests.usermodels:not_a_module -o {dir}/e14",
     "not an nn.Module"),
    ("train-import-path-missing", "train no_such_pkg.nets:small --data digits --out {dir}/t7",
     "does not import"),
    ("info-import-path-no-callable", "info tests.usermodels:nothing_here", "no callable"),
    ("export-int8-no-data", "export mobilenet --int8 -o {dir}/e4", "--calib-data"),
    ("export-unknown-target", "export mobilenet --target gameboy -o {dir}/e5", "gameboy"),
    ("export-bad-opset", "export mobilenet --target jetson-nano --opset 21 -o {dir}/e6",
     "opset"),
    ("export-readonly-out", "export lenet5 -o {readonly}/art", "readonly"),
    ("export-full-disk", "export lenet5 -o {full}/art", "space"),
    ("train-full-disk", "train lenet5 --data digits --epochs 1 --out {full}/run", "space"),
    ("bench-full-disk", "bench lenet5 --iters 5 --warmup 1 -o {full}/bench.json", "space"),
    ("predict-missing-model", "predict {dir}/missing.onnx {notimage}", "missing.onnx"),
    ("predict-corrupt-model", "predict {corrupt_onnx} {notimage}", "corrupt.onnx"),
    ("predict-non-utf8-name", "predict {non_utf8} {notimage}", "name"),
    ("predict-unknown-runtime", "predict {corrupt_onnx} x.png --runtime tflite", "tflite"),
    ("bench-missing", "bench {dir}/missing.onnx", "missing.onnx"),
    ("bench-bad-batch", "bench mobilenet --batch 0", "positive integer"),
    ("bench-threads-over-cores", "bench {corrupt_onnx} --threads 4097", "this machine's cores"),
    ("bench-output-is-dir", "bench {corrupt_onnx} -o {empty_dir}", "empty_dir"),
    ("sweep-bad-alpha", "sweep mobilenet --alpha -1 --resolution 32 -o {dir}/s1", "alpha"),
    ("pipeline-missing", "pipeline {dir}/missing.yaml --out {dir}/p1", "missing.yaml"),
    ("pipeline-bad-yaml", "pipeline {bad_yaml} --out {dir}/p2", "not valid YAML"),
    # issue 12: the zoo commands
    ("list-no-match", "list zzz*", "no model matches"),
    ("list-no-match-closest", "list mobilnet", "closest: mobilenet"),
    ("info-zero-classes", "info lenet5 --num-classes 0", "positive integer"),
    ("info-unknown-suggests", "info resnet19", "did you mean"),
    # train and eval
    ("train-data-case", "train lenet5 --data MNIST5k --out {dir}/t7", "did you mean mnist5k"),
    ("train-builtin-with-path", "train lenet5 --data digits:/x --out {dir}/t8", "takes no path"),
    ("train-folder-no-path", "train lenet5 --data imagefolder: --out {dir}/t9", "needs a path"),
    ("train-unknown-model", "train lenett5 --data digits --out {dir}/t10", "unknown model"),
    ("train-resume-and-force", "train lenet5 --data digits --resume --force --out {dir}/t11",
     "not allowed with"),
    ("train-init-missing", "train lenet5 --data digits --init {dir}/missing.pt --out {dir}/t12",
     "missing.pt"),
    ("eval-onnx-file", "eval {corrupt_onnx} --data digits", "eval takes training checkpoints"),
    ("eval-artifact-dir", "eval {model}", "bench"),
    ("eval-split-test", "eval {ckpt} --split test --no-pictures", "no test split"),
    ("eval-data-case", "eval {ckpt} --data Digits --no-pictures", "did you mean digits"),
    ("eval-bad-batch", "eval {ckpt} --batch-size 0", "--batch-size must be positive"),
    ("eval-unknown-data", "eval {ckpt} --data nosuchset --no-pictures", "nosuchset"),
    # export
    ("export-unknown-model", "export mobilenett -o {dir}/e7", "unknown model"),
    ("export-calib-method-alone", "export lenet5 --calib-method entropy -o {dir}/e8",
     "applies to --int8 only"),
    ("export-max-drop-alone", "export lenet5 --max-drop 2 -o {dir}/e9", "applies to --int8 only"),
    ("export-calib-unknown", "export {ckpt} --int8 --calib-data nosuch -o {dir}/e10", "nosuch"),
    ("export-bad-method", "export lenet5 --prune 0.5 --prune-method magic -o {dir}/e11",
     "invalid choice"),
    # predict: files a user's folder holds
    ("predict-not-an-image", "predict {model} {notimage}", "not an image"),
    ("predict-bomb", "predict {model} {bomb}", "decompression bomb"),
    ("predict-truncated", "predict {model} {truncated}", "truncated.jpg"),
    ("predict-missing-image", "predict {model} {dir}/nope.png", "no such image file"),
    ("predict-empty-folder", "predict {model} {empty_dir}", "no images found"),
    ("predict-topk-zero", "predict {model} {notimage} --topk 0", "positive integer"),
    # bench, sweep, pipeline
    ("bench-unknown-format", "bench lenet5 --format xml", "invalid choice"),
    ("bench-iters-and-duration", "bench lenet5 --iters 5 --duration 1", "not allowed with"),
    ("bench-unknown-runtime", "bench lenet5 --runtime tflite", "tflite"),
    ("bench-negative-warmup", "bench lenet5 --warmup -1", "--warmup"),
    ("bench-data-case", "bench {model} --data MNIST5k --iters 2 --warmup 0",
     "did you mean mnist5k"),
    ("sweep-unknown-model", "sweep mobilenett --alpha 0.5 --resolution 32 -o {dir}/s2",
     "unknown model"),
    ("sweep-zero-resolution", "sweep mobilenet --resolution 0 -o {dir}/s3", "positive integer"),
    ("pipeline-unknown-key", "pipeline {bad_key_yaml} --out {dir}/p3", "flavour"),
    ("pipeline-recipe-is-dir", "pipeline {empty_dir} --out {dir}/p4", "empty_dir"),
]


@pytest.mark.parametrize("case, argv, expected", TABLE, ids=[c[0] for c in TABLE])
def test_bad_input(case: str, argv: str, expected: str, files: dict[str, Path],
                   capfd: pytest.CaptureFixture[str]) -> None:
    if case.endswith("readonly-out") and os.geteuid() == 0 and not os.path.ismount(
            files["readonly"]):
        pytest.skip("root writes into read-only directories (and could not mount one)")
    if case.endswith("full-disk") and not os.path.ismount(files["full"]):
        pytest.skip("cannot mount a tiny tmpfs here to simulate a full disk")
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv.split()]
    before = snapshot(files["dir"])
    if case in CONSOLE:
        proc = run_cli(*args)
        code, stderr = proc.returncode, proc.stderr
    else:
        code, _, stderr = run_main(args, capfd)
    assert code == 2, (code, stderr[-500:])
    assert "Traceback" not in stderr
    # one error line, the last; before it at most warnings the command gave while working
    # (an untrained export that then meets a full disk warns first)
    *before_error, error = stderr.splitlines()
    assert re.match(r"edgecnn( \w+)?: error: ", error), stderr  # argparse names the command
    # (or predict's line naming the runtime it chose, before an image turns out bad)
    assert all(line.startswith("edgecnn: warning: ") or re.match(r"edgecnn: \S+ .*\[.*\]$", line)
               for line in before_error), stderr
    assert expected in error.replace("\udcff", "\ufffd") or expected in error
    assert snapshot(files["dir"]) == before, "a failed command changed the files"


def test_the_console_cases_are_in_the_table() -> None:
    assert set(CONSOLE) <= {c[0] for c in TABLE}
