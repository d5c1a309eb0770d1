"""Models edgecnn did not write, through edgecnn: the two figures of the foreign-model issue.

    PYTHONPATH=. python benchmarks/foreign/run.py        # from the repository root

(a) MobileNet alpha 0.5 at 224, exported by plain `torch.onnx.export` (initialized weights,
    BatchNorm statistics from one batch, exactly as `edgecnn export mobilenet` initializes
    them: same seed, same network), then `edgecnn export FILE.onnx --int8`; against the zoo
    export of the same network. Both int8 speed-ups over fp32 in ONNX Runtime, measured side
    by side in one interleaved group of the bench harness (batch 1, 1 thread).
(b) A model defined outside the zoo (`tests/usermodels.py:small_cnn`, imported by path) through
    `edgecnn train`, `edgecnn export --prune 0.5 --finetune-epochs 3 --int8` and `edgecnn
    predict`: MACs, held-out top-1 and latency before and after, the four variants timed in
    one interleaved group.
Writes benchmarks/foreign/results.{json,md}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
THREADS = 1  # a shared 2-core machine: one thread per runtime keeps the two cases fair
IMAGENET = ("0.485,0.456,0.406", "0.229,0.224,0.225")


def edgecnn(*args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "edgecnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"edgecnn {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def plain_torch_onnx(path: Path) -> None:
    """The network `edgecnn export mobilenet --alpha 0.5` builds (seed 0), written by
    torch.onnx.export with its defaults and names of its own: not by edgecnn."""
    import torch

    from edgecnn.export.source import init_bn_stats
    from edgecnn.registry import create_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = create_model("mobilenet", alpha=0.5)
        init_bn_stats(model, torch.randn(8, 3, 224, 224))
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False,
                      opset_version=17, input_names=["image"], output_names=["scores"])


def bench(artifacts: dict[str, Path], data: str | None) -> list[dict]:
    from edgecnn.bench.machine import peak_gmacs
    from edgecnn.bench.run import BenchConfig, eval_data_for
    from edgecnn.bench.targets import BenchTarget, make_cases, resolve_target
    from edgecnn.timing.harness import run_group
    from edgecnn.timing.loop import TimingPlan

    group, eval_data = [], None
    for label, path in artifacts.items():
        t = resolve_target(str(path), alpha=1.0, resolution=None, precisions=("fp32",))
        t = BenchTarget(label, t.files, t.input_shape, t.info)
        (cases,) = make_cases(t, runtimes=("onnxruntime",), precisions=("fp32", "int8"),
                              batches=(1,), threads=THREADS, device="cpu")
        group += cases
        if data:
            eval_data = eval_data_for(BenchConfig(data=data, threads=THREADS), t.input_shape,
                                      t.files)
    # one group: every variant timed in alternating blocks (the harness's pauses included)
    records = run_group(group, TimingPlan(warmup=20, iters=300), peak_gmacs=peak_gmacs(THREADS),
                        rounds=6, eval_data=eval_data)
    return [r.to_dict() for r in records]


def figure_a(tmp: Path) -> dict:
    tmp.mkdir(parents=True)
    foreign = tmp / "mobilenet_plain.onnx"
    plain_torch_onnx(foreign)
    t0 = time.perf_counter()
    edgecnn("export", str(foreign), "--mean", IMAGENET[0], "--std", IMAGENET[1], "--int8",
            "--calib-data", "mnist5k", "-o", str(tmp / "foreign"), cwd=tmp)
    t1 = time.perf_counter()
    edgecnn("export", "mobilenet", "--alpha", "0.5", "--int8", "--calib-data", "mnist5k",
            "-o", str(tmp / "zoo"), cwd=tmp)
    t2 = time.perf_counter()
    reports = {k: json.loads((tmp / k / "export.json").read_text()) for k in ("foreign", "zoo")}
    records = bench({"zoo export": tmp / "zoo", "foreign ONNX file": tmp / "foreign"}, None)
    p50 = {(r["model"], r["precision"]): r["latency_ms_p50"] for r in records}
    rows = {}
    for label, key in (("zoo export", "zoo"), ("foreign ONNX file", "foreign")):
        int8 = reports[key]["int8"]
        rows[label] = {"fp32_p50_ms": p50[(label, "fp32")], "int8_p50_ms": p50[(label, "int8")],
                       "int8_speedup": p50[(label, "fp32")] / p50[(label, "int8")],
                       "float_layers": int8["float_layers"], "criterion": int8["criterion"],
                       "agreement_pct": int8["final"]["agreement"],
                       "macs": reports[key]["macs"]["after"],
                       "params": reports[key]["params"]["after"]}
    rows["foreign ONNX file"]["onnx_file"] = {
        k: v for k, v in reports["foreign"]["onnx_file"].items() if k not in ("file", "sha256")}
    rows["foreign ONNX file"]["export_s"] = round(t1 - t0, 1)
    rows["zoo export"]["export_s"] = round(t2 - t1, 1)
    ratio = rows["foreign ONNX file"]["int8_speedup"] / rows["zoo export"]["int8_speedup"]
    return {"rows": rows, "speedup_ratio_foreign_over_zoo": ratio, "records": records}


def figure_b(tmp: Path) -> dict:
    from PIL import Image

    from edgecnn.data import load_dataset

    tmp.mkdir(parents=True)
    model = "tests.usermodels:small_cnn"
    t0 = time.perf_counter()
    edgecnn("train", model, "--data", "digits", "--resolution", "32", "--epochs", "8",
            "--out", str(tmp / "run"), cwd=tmp)
    t1 = time.perf_counter()
    ckpt = str(tmp / "run" / "best.pt")
    edgecnn("export", ckpt, "--int8", "--calib-data", "digits", "-o", str(tmp / "before"),
            cwd=tmp)
    summary = edgecnn("export", ckpt, "--prune", "0.5", "--finetune-epochs", "3", "--int8",
                      "--calib-data", "digits", "-o", str(tmp / "after"), cwd=tmp)
    t2 = time.perf_counter()
    val = load_dataset("digits", split="val")
    images = []
    for i in range(5):  # the held-out digits as image files, as a user would have them
        images.append(tmp / f"digit{i}_label{val.labels[i]}.png")
        Image.fromarray(val.images[i, 0]).save(images[-1])
    predicted = edgecnn("predict", str(tmp / "after"), *map(str, images), "--topk", "1",
                        cwd=tmp)
    records = bench({"before (unpruned)": tmp / "before", "after (pruned 0.5)": tmp / "after"},
                    "digits")
    after = json.loads((tmp / "after" / "export.json").read_text())
    by = {(r["model"], r["precision"]): r for r in records}
    rows = {}
    for label in ("before (unpruned)", "after (pruned 0.5)"):
        for precision in ("fp32", "int8"):
            r = by[(label, precision)]
            rows[f"{label} {precision}"] = {"macs": r["macs"], "params": r["params"],
                                            "top1_pct": r["accuracy_top1_pct"],
                                            "p50_ms": r["latency_ms_p50"],
                                            "file_mb": r["file_size_mb"]}
    return {"model": model, "rows": rows, "unpruned_layers": after["pruning"]["unpruned"],
            "torch_top1": {k: after["pruning"][k] for k in
                           ("top1_before", "top1_pruned", "top1_after")},
            "train_s": round(t1 - t0, 1), "export_s": round(t2 - t1, 1),
            "export_summary": summary.strip().splitlines(),
            "predict_output": predicted.strip().splitlines(), "records": records}


def render() -> int:
    """results.md again from results.json (after a change to the text, not the numbers)."""
    (HERE / "results.md").write_text(markdown(json.loads((HERE / "results.json").read_text())))
    return 0


def main() -> int:
    from edgecnn.bench.machine import conditions

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        a = figure_a(Path(tmp) / "a")
        b = figure_b(Path(tmp) / "b")
    import onnx

    out = {"conditions": conditions(THREADS) | {"loadavg_before": load_before,
                                                "loadavg_after": os.getloadavg(),
                                                "onnx": onnx.__version__},
           "a": a, "b": b}
    (HERE / "results.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    (HERE / "results.md").write_text(markdown(out))
    print(markdown(out))
    return 0


def markdown(out: dict) -> str:
    c, a, b = out["conditions"], out["a"], out["b"]
    pk = c["packages"]
    lines = [
        "# Foreign models through edgecnn", "",
        f"Command: `PYTHONPATH=. python benchmarks/foreign/run.py`. Machine: {c['cpu']}, "
        f"{c['cpu_cores']} cores shared with other work (load average "
        f"{out['conditions']['loadavg_before'][0]:.1f} before, "
        f"{out['conditions']['loadavg_after'][0]:.1f} after); {THREADS} thread per runtime, "
        f"batch 1; onnxruntime {pk.get('onnxruntime')}, onnx {c.get('onnx')}, torch "
        f"{pk.get('torch')}; measured {c.get('time_utc', '')}. p50 of 300 timed calls per "
        "variant, all variants of a figure interleaved in one group of the bench harness.", "",
        "## (a) MobileNet alpha 0.5 at 224: plain torch.onnx file vs the zoo export", "",
        "Initialized weights (BN statistics from one batch), 1000 classes, calibrated on "
        "mnist5k (256 train images): the classes are not the data's, so the guard's criterion "
        "is int8/fp32 top-1 agreement on the 1,000 held-out images (>= 99%). Initialized "
        "weights agree less than that, so the guard keeps its most sensitive layers in float "
        "for both exports: the speed-ups below are those of the guard's choice, not of an "
        "all-int8 graph.", "",
        "| source | fp32 p50 | int8 p50 | int8 speed-up | float layers | agreement | export |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in a["rows"].items():
        lines.append(f"| {label} | {r['fp32_p50_ms']:.3f} ms | {r['int8_p50_ms']:.3f} ms | "
                     f"{r['int8_speedup']:.2f}x | {len(r['float_layers'])} | "
                     f"{r['agreement_pct']:.1f}% | {r['export_s']:.0f} s |")
    f = a["rows"]["foreign ONNX file"]["onnx_file"]
    lines += ["", f"Foreign over zoo speed-up: {a['speedup_ratio_foreign_over_zoo']:.3f}. "
              f"The file: opset {f['opset_in']} -> {f['opset']}, IR {f['ir_version_in']} -> "
              f"{f['ir_version']}, input `{f['input_in']}` {f['layout_in']}.", "",
              f"## (b) {b['model']}: train, export --prune 0.5 --finetune-epochs 3 --int8, "
              "predict", "",
              f"Trained 8 epochs on digits at 32 px ({b['train_s']:.0f} s); top-1 on the 360 "
              "held-out digits, through the runtime.", "",
              "| variant | MACs | params | top-1 | p50 | file |", "|---|---:|---:|---:|---:|---:|"]
    for label, r in b["rows"].items():
        lines.append(f"| {label} | {r['macs']:,} | {r['params']:,} | {r['top1_pct']:.2f}% | "
                     f"{r['p50_ms']:.3f} ms | {r['file_mb']:.3f} MB |")
    t = b["torch_top1"]
    lines += ["", f"PyTorch top-1: {t['top1_before']}% before, {t['top1_pruned']}% right after "
              f"pruning, {t['top1_after']}% after fine-tuning. Layers left whole: "
              + ", ".join(f"{u['layer']} ({u['reason']})" for u in b["unpruned_layers"]) + ".",
              "", "`edgecnn predict` on five held-out digits saved as PNG files:", "", "```",
              *(Path(line).name if line.startswith("/") else line
                for line in b["predict_output"]), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    raise SystemExit(render() if sys.argv[1:] == ["--render"] else main())
