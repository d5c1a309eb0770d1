"""The parity rule's margin on this CPU: the worst honest export against the smallest
planted bug, both as the rule measures them (edgecnn/export/parity.py): a runtime's max abs
error against float64 PyTorch over the measured fp32 rounding ("ratio"; the rule passes an
export iff ratio <= SLACK for both ONNX Runtime and OpenVINO).

    python benchmarks/parity/margin.py            # ~10 min on 2 shared cores
    python benchmarks/parity/margin.py --quick    # fewer models, no per-conv sweep

Honest: one model per zoo family and the deep nets that Zen 4 refused under the old rule,
initialized weights with BN statistics from a random batch (what `edgecnn export NAME`
exports), at small resolution, 4 random images; the edge families with BN statistics from
real digits (tests/test_arm64.py's checkpoints), on random and digit inputs; a MobileNet
trained on mnist5k (benchmarks/parity/cases.py), on both. Bugs (cases.py): each planted in
a random-weight MobileNet (BN eps 1e-3), the trained MobileNet and a random-weight
SqueezeNet 1.1, where "bias" and "pad" are planted in every convolution in turn (one at a
time) and the smallest ratio is kept; and in ResNet-101 and PreAct-ResNet-200 (BN eps 1e-3),
whose fp32 rounding is the largest of the zoo (their default conv only). A planted bug that moves ONNX Runtime's logits by less than
the measured fp32 rounding (RGB swapped on gray digits, a final ReLU over logits that are all
positive) changes nothing these inputs can show: it is listed as invisible and left out of
the smallest bug ratio. Writes margin.json and margin.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from benchmarks.parity import cases  # noqa: E402
from edgecnn.export.parity import SLACK, judge, references  # noqa: E402

ZOO = ["lenet5@32", "alexnet@63", "densenet121@61", "googlenet@47", "mobilenet@32",
       "mobilenet_v2@32", "mobilenet_v3_small@32", "mobilenet_v3_large@32",
       "preact_resnet18@32", "resnet18@32", "resnext50_32x4d@32", "se_resnet50@32",
       "shufflenet_v2_x0_5@32", "squeezenet1_1@32", "squeezenext23@32", "vgg11_bn@32",
       "resnet101@32", "preact_resnet200@32", "resnet152@32", "squeezenext44@48"]
QUICK = ["lenet5@32", "mobilenet@32", "mobilenet_v2@32", "squeezenet1_1@32",
         "squeezenext23@32", "resnet18@32"]
DIGITS_BN = [("mobilenet", 0.25), ("mobilenet_v2", 0.25), ("mobilenet_v3_small", 0.5),
             ("shufflenet_v2_x0_5", 1.0), ("squeezenet1_1", 1.0), ("squeezenext23", 1.0)]


def row(kind: str, model: str, inputs: str, r) -> dict:  # noqa: ANN001
    rounding = r.rounding
    return {"kind": kind, "model": model, "inputs": inputs, "ok": r.ok,
            "logits_max_abs": r.logits_max_abs, "torch_fp32_error": r.torch_fp32_error,
            "injected_error": r.injected_error, "onnxruntime_error": r.onnxruntime_error,
            "openvino_error": r.openvino_error,
            "ratio_onnxruntime": r.onnxruntime_error / rounding if rounding else None,
            "ratio_openvino": r.openvino_error / rounding if rounding else None,
            "shape_mismatch": r.shape_mismatch}


def honest(model, x_sets, label: str, out: list) -> None:  # noqa: ANN001
    proto = cases.export_fp32(model, x_sets[0][1])
    for inputs, x in x_sets:
        expected, exact, injected, f64 = references(model, x)
        r = judge(inputs, expected, exact, injected, cases.consumers_logits(proto, x), f64)
        out.append(row("honest", label, inputs, r))
        print(f"honest {label:28s} {inputs:7s} ratio ort {out[-1]['ratio_onnxruntime']:.2f} "
              f"ov {out[-1]['ratio_openvino']:.2f}  ok {r.ok}", flush=True)


def bugs(model, x_sets, label: str, sweep: bool, out: list) -> None:  # noqa: ANN001
    proto = cases.export_fp32(model, x_sets[0][1])
    refs = {inputs: references(model, x) for inputs, x in x_sets}
    for bug in cases.BUGS:
        if bug == "bn_eps" and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                       for m in model.modules()):
            continue  # no BatchNorm: nothing to plant
        if bug == "bn_eps":
            planted = [("", cases.bn_eps_bug(model, x_sets[0][1]))]
        elif bug in ("bias", "pad") and sweep:
            planted = []
            for i in range(len(cases.convs(proto))):
                try:
                    p = cases.plant(proto, bug, i)
                except (IndexError, ValueError):
                    break
                planted.append((f"#{i}", p))
        else:
            planted = [("", cases.plant(proto, bug))]
        if bug == "bias":  # a bias of zeros (no BN, zero-initialized): nothing was planted
            weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
            biased = [n for n in cases.convs(proto) if len(n.input) == 3 and n.input[2]]
            planted = [(tag, p) for tag, p in planted
                       if np.abs(weights[biased[int(tag[1:]) if tag else
                                                len(biased) // 2].input[2]]).max() > 0]
        for inputs, x in x_sets:
            rows = []
            clean = cases.consumers_logits(proto, x)["onnxruntime"]
            for tag, p in planted:
                expected, exact, injected, f64 = refs[inputs]
                r = judge(inputs, expected, exact, injected, cases.consumers_logits(p, x),
                          f64)
                rows.append(row("bug", label, inputs, r) | {"bug": bug + tag})
                # a bug that moves the logits less than fp32 rounding does (gray digits with
                # RGB swapped, a final ReLU over positive logits) is no bug on these inputs
                moved = cases.consumers_logits(p, x)["onnxruntime"]
                rows[-1]["visible"] = bool(moved.shape != clean.shape or np.abs(
                    moved - clean).max() > r.rounding)
            if not rows:
                continue
            seen = [d for d in rows if d["visible"]] or rows
            worst = min(seen, key=lambda d: max(d["ratio_onnxruntime"] or np.inf,
                                                d["ratio_openvino"] or np.inf))
            worst["planted"] = len(rows)
            worst["invisible"] = sum(not d["visible"] for d in rows)
            worst["caught"] = sum(not d["ok"] for d in rows)
            out.append(worst)
            print(f"bug    {label:28s} {inputs:7s} {bug:10s} smallest ratio ort "
                  f"{worst['ratio_onnxruntime'] or np.inf:.3g} ov "
                  f"{worst['ratio_openvino'] or np.inf:.3g} ({worst['bug']}); caught "
                  f"{worst['caught']}/{len(rows)}, {worst['invisible']} invisible", flush=True)


def cpu() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    simd = [f for f in flags if f.startswith(("sse", "ssse", "avx", "fma", "f16c", "amx"))]
    return {"model": fields.get("Model name", "?").strip(), "simd_flags": simd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    out: list[dict] = []
    for spec in QUICK if args.quick else ZOO:
        name, res = spec.split("@")
        model = cases.zoo_model(name, int(res))
        honest(model, [("random", cases.random_inputs(model, int(res)))], spec, out)
    xd = cases.digits(32, "val", 8)[0]
    for name, alpha in DIGITS_BN[:2] if args.quick else DIGITS_BN:
        model = cases.digits_bn_model(name, alpha)
        honest(model, [("random", cases.random_inputs(model, 32)), ("digits", xd)],
               f"{name} a{alpha} digits-BN", out)
    trained, top1 = cases.trained_model()
    xr = cases.random_inputs(trained, 32)
    honest(trained, [("random", xr), ("digits", xd)], f"mobilenet a0.25 trained {top1:.0%}",
           out)
    sweep = not args.quick
    bugs(trained, [("random", xr), ("digits", xd)], "mobilenet a0.25 trained", sweep, out)
    random_mobilenet = cases.zoo_model("mobilenet", 32, alpha=0.25, bn_eps=cases.TRAIN_EPS)
    bugs(random_mobilenet, [("random", cases.random_inputs(random_mobilenet, 32))],
         "mobilenet a0.25 random", sweep, out)
    for name in [] if args.quick else ["resnet101", "preact_resnet200"]:
        deep = cases.zoo_model(name, 32, bn_eps=cases.TRAIN_EPS)  # no sweep: 100+ convs
        bugs(deep, [("random", cases.random_inputs(deep, 32))], f"{name} random", False, out)
    squeeze = cases.zoo_model("squeezenet1_1", 32)
    bugs(squeeze, [("random", cases.random_inputs(squeeze, 32))], "squeezenet1_1 random",
         sweep, out)

    good = [r for r in out if r["kind"] == "honest"]
    bad = [r for r in out if r["kind"] == "bug" and not r["shape_mismatch"]]
    worst_honest = max(max(r["ratio_onnxruntime"], r["ratio_openvino"]) for r in good)
    smallest_bug = min(max(r["ratio_onnxruntime"], r["ratio_openvino"]) for r in bad
                       if r["visible"])
    import onnxruntime
    import openvino

    summary = {"slack": SLACK, "worst_honest_ratio": worst_honest,
               "smallest_bug_ratio": smallest_bug, "cpu": cpu(),
               "versions": {"python": platform.python_version(), "torch": torch.__version__,
                            "onnxruntime": onnxruntime.__version__,
                            "openvino": openvino.__version__},
               "date": time.strftime("%Y-%m-%d", time.gmtime()),
               "seconds": round(time.time() - start), "quick": args.quick}
    print(json.dumps(summary, indent=1))
    if not args.quick:
        (HERE / "margin.json").write_text(json.dumps({"summary": summary, "rows": out},
                                                     indent=1) + "\n")
        write_md(summary, out)


def write_md(summary: dict, rows: list[dict]) -> None:
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    lines = [f"# Parity margin on {summary['cpu']['model']} ({summary['date']})", "",
             f"SLACK {summary['slack']:g}; worst honest ratio "
             f"{summary['worst_honest_ratio']:.2f}, smallest planted-bug ratio "
             f"{summary['smallest_bug_ratio']:.3g}. Written by benchmarks/parity/margin.py.",
             "", "| kind | model | inputs | bug | logits max | PyTorch fp32 err | injected | "
             "ORT err | OV err | ratio ORT | ratio OV | ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bug = r.get("bug", "")
        if "planted" in r:
            bug += f" (smallest of {r['planted']}, {r['caught']} caught"
            bug += f", {r['invisible']} invisible)" if r["invisible"] else ")"
            if not r["visible"]:
                bug += ": invisible on these inputs"
        if r["shape_mismatch"]:
            bug += f": {r['shape_mismatch']}"
        lines.append(f"| {r['kind']} | {r['model']} | {r['inputs']} | {bug} | "
                     f"{r['logits_max_abs']:.3g} | {fmt(r['torch_fp32_error'])} | "
                     f"{fmt(r['injected_error'])} | {fmt(r['onnxruntime_error'])} | "
                     f"{fmt(r['openvino_error'])} | {fmt(r['ratio_onnxruntime'])} | "
                     f"{fmt(r['ratio_openvino'])} | {r['ok']} |")
    (HERE / "margin.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
