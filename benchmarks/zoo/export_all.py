"""Every zoo model through `edgecnn export`, fp32 and int8, at its minimum and default size.

    nice -n 10 python benchmarks/zoo/export_all.py                       # the whole matrix
    python benchmarks/zoo/export_all.py --sizes min --precisions fp32 --models vgg11,alexnet
    python benchmarks/zoo/export_all.py --render                          # table from results

Each export is the CLI's own path, in-process: `edgecnn.cli.main.main(["export", NAME,
"--resolution", R, "--num-classes", "10", ...])`, int8 with `--int8 --calib-data random`.
The minimum size is max(min_resolution, 32) (the smallest input the model documents, raised to
32 px: below it SqueezeNext's random-weight logits reach 1e5). Results are appended to
export_all.jsonl as each export ends (a rerun skips the exports that succeeded, so a long
matrix can be run in parts); export_all.md is rendered from them. Artifacts go to a temporary
directory and are deleted (VGG-19's fp32 file alone is 0.5 GB).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import platform
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import edgecnn
from edgecnn.cli.main import main as cli

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "export_all.jsonl"
TABLE = HERE / "export_all.md"
PRECISIONS = ("fp32", "int8")
NOTES = """Notes
- Order of the runs: every model at its minimum size in fp32 (name order), then in int8,
  then at its default size in fp32, then in int8 (these three from the fewest parameters to
  the most). Two sessions on 2026-12-05: in both the machine's 2 cores were shared with
  other engineers' jobs and tests (load average 5-8; this script at nice 10, then nice 19,
  one process per model and size in the second), so times are several times an idle
  machine's: DenseNet-121 at 61 px took 21 s alone in a standalone run, 119 s here. The
  exports that did not fit before the deadline are "not run" above; the same command
  resumes them (finished exports are skipped). The second session stopped the matrix twice
  to time on an idle machine (killing VGG-19's 224 px fp32 export and DenseNet-169's 224 px
  int8 export: their records were dropped, not counted as failures); default-size int8 ran
  for the 19 models with the fewest parameters (every edge family, GoogLeNet,
  DenseNet-121, ResNet-18, PreAct-ResNet-18), not for the rest. In the first session VGG-19 and VGG-19-BN at
  32 px were OOM-killed (8.9 GB resident, the machine's 23 GB shared) after 41 exports in
  one process; in the second, one process each, both passed.
- gzip's size is reported only for files up to 64 MB since the second session (gzip -9 took
  27 s of VGG-11's 60 s export); rows after that change are faster for the big models.
- Where the big models' time goes, from export.json's timings of VGG-11-BN at 32 px: 29 s
  to the checked fp32 graph (export, simplification, parity in two runtimes) out of 73 s;
  the rest is writing the 0.5 GB file and its size report (gzip -9 and zstd -10 of the
  whole file: export/artifact.py `file_sizes`).
- BatchNorm before a conv (DenseNet-BC, pre-activation ResNets): export/bnfold.py folds it
  where exact, else writes Mul + Add (fp32 cost in bn_forms.md; with BatchNormalization
  kept, OpenVINO 2026.4 segfaulted compiling DenseNet's int8 graph: this matrix's first
  int8 pass died on densenet121). The rows of those 10 models are from after that change.
- SqueezeNext-44 at 32 px sits on the parity bound: ONNX Runtime, OpenVINO and PyTorch fp32
  are all 1e-5..1e-4 of the logit scale from float64 (conditioning.md): ill-conditioned
  random-weight logits (up to 3,600), not an export bug; whether it passes depends on the
  CPU's summation order."""


def resolution(name: str, size: str) -> int:
    spec = edgecnn.get_spec(name)
    return spec.resolution if size == "default" else max(spec.min_resolution, 32)


def export_once(name: str, res: int, precision: str, workdir: Path) -> dict:
    """One `edgecnn export`; ok, seconds, the error line (if any), whether an int8 file was
    written."""
    out = workdir / f"{name}-{res}-{precision}"
    argv = ["export", name, "--resolution", str(res), "--num-classes", "10",
            "-o", str(out), "--force"]
    if precision == "int8":
        argv += ["--int8", "--calib-data", "random"]
    err = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = cli(argv)
    except Exception as exc:  # a bug (traceback in the CLI): recorded, the matrix goes on
        rc, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - started
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    error = next((ln for ln in lines if ln.startswith("edgecnn: error")), lines[-1] if lines
                 else "") if rc else ""
    row = {"model": name, "resolution": res, "precision": precision, "ok": rc == 0,
           "seconds": round(seconds, 1), "error": error[:300]}
    if rc == 0 and precision == "int8":
        report = json.loads((out / "export.json").read_text())
        row["int8_file"] = (out / "model.int8.onnx").exists()
        row["int8_written"] = report.get("int8", {}).get("written", row["int8_file"]) \
            if isinstance(report.get("int8"), dict) else row["int8_file"]
    shutil.rmtree(out, ignore_errors=True)
    return row


def load_rows() -> list[dict]:
    if not RESULTS.exists():
        return []
    rows = [json.loads(ln) for ln in RESULTS.read_text().splitlines() if ln.strip()]
    # the last run of each export counts (a failed one is run again next time)
    return list({(r["model"], r["resolution"], r["precision"]): r for r in rows}.values())


def render(rows: list[dict]) -> str:
    import onnx
    import onnxruntime
    import openvino
    import torch

    by_key = {(r["model"], r["resolution"], r["precision"]): r for r in rows}
    # every model at its minimum size is listed, run or not; default sizes when run
    keys = sorted({(r["model"], r["resolution"]) for r in rows}
                  | {(n, resolution(n, "min")) for n in edgecnn.list_models()})
    lines = [
        "# Every zoo model through `edgecnn export`",
        "",
        f"Rendered {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC from "
        "export_all.jsonl by `nice -n 10 python benchmarks/zoo/export_all.py` (see its "
        "docstring): `edgecnn export NAME --resolution R --num-classes 10` in-process, int8 "
        "adding `--int8 --calib-data random`; target cpu-x86 (opset 17), initialized weights.",
        f"CPU: {_cpu()}, shared with other jobs (times are wall seconds of one export, "
        "everything included: export, simplification, parity in ONNX Runtime and OpenVINO, "
        "int8 calibration and guard, file writing). Python "
        f"{platform.python_version()}, torch {torch.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, "
        f"onnxslim {version('onnxslim')}.",
        "",
        "| model | px | fp32 | fp32 s | int8 | int8 s | error |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for model, res in keys:
        cells, errors = [], []
        for p in PRECISIONS:
            r = by_key.get((model, res, p))
            if r is None:
                cells += ["not run", ""]
                continue
            ok = "ok" if r["ok"] else "FAIL"
            if r["ok"] and p == "int8" and not r.get("int8_file", True):
                ok = "ok (no int8 file)"
            cells += [ok, f"{r['seconds']:.1f}"]
            if r["error"]:
                errors.append(f"{p}: {r['error']}".replace("|", "/"))
        lines.append(f"| {model} | {res} | " + " | ".join(cells) + f" | {'; '.join(errors)} |")
    done = [r for r in rows if r["ok"]]
    missing = 2 * len(keys) - len(rows)
    lines += ["", f"{len(done)} of {len(rows)} exports succeeded"
              + (f"; {missing} not run (time: see below)." if missing else "."), "", NOTES]
    return "\n".join(lines) + "\n"


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(edgecnn.list_models()))
    ap.add_argument("--sizes", default="min,default", help="min and/or default")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--render", action="store_true", help="only rewrite export_all.md")
    args = ap.parse_args()
    rows = load_rows()
    if not args.render:
        done = {(r["model"], r["resolution"], r["precision"]) for r in rows if r["ok"]}
        with tempfile.TemporaryDirectory(prefix="export_all-") as tmp:
            for size in args.sizes.split(","):
                for precision in args.precisions.split(","):
                    for name in args.models.split(","):
                        key = (name, resolution(name, size), precision)
                        if key in done:
                            continue
                        row = export_once(*key, Path(tmp))
                        rows = [r for r in rows if (r["model"], r["resolution"],
                                                    r["precision"]) != key] + [row]
                        done.add(key)
                        with RESULTS.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    TABLE.write_text(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
