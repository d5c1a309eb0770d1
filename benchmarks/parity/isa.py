"""The parity rule on CPUs without this host's AVX2: ONNX Runtime and OpenVINO under
qemu-user, judged by the same rule (edgecnn.export.parity.judge) against references
computed natively.

    apt-get install -y qemu-user                       # qemu-x86_64
    python benchmarks/parity/isa.py                    # ~15 min on 2 shared cores
    python benchmarks/parity/isa.py --cpus Nehalem --quick

Natively: the cases of benchmarks/parity/cases.py (honest exports of zoo models at small
resolution, BN statistics from digits, a MobileNet trained on mnist5k; the planted bugs in a
random and the trained MobileNet and a random SqueezeNet 1.1) are exported, and their inputs
with PyTorch fp32, float64 and rounding-injected float64 logits saved (torch under qemu would
crawl). Then `qemu-x86_64 -cpu MODEL` runs this file with --emulated on the same Python: it
imports no torch, builds the export's own consumers (parity_runners: ONNX Runtime, OpenVINO
f32, one thread) on the same ONNX files, and applies the same verdict. ONNX Runtime and
OpenVINO pick their kernels by CPUID, which qemu answers for the emulated model: Nehalem
(SSE4.2) and SandyBridge (AVX without FMA or AVX2). qemu-user shows the host's
/proc/cpuinfo, so the emulated CPU's flags are read through CPUID (numpy's detection), and
OpenVINO's kernel names (jit_sse42_*, jit_avx_*) say which ISA it compiled for.
Writes isa.json and isa.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

WORK = ROOT / "runs" / "parity-isa"
HONEST = ["lenet5@32", "mobilenet@32", "mobilenet_v2@32", "mobilenet_v3_small@32",
          "shufflenet_v2_x0_5@32", "squeezenet1_1@32", "squeezenext23@32", "resnet18@32",
          "resnet101@32", "preact_resnet200@32"]
QUICK = ["mobilenet@32", "squeezenext23@32"]


def prepare(work: Path, quick: bool) -> list[dict]:
    """Export every case and save its inputs and references; returns the manifest."""
    import onnx
    import torch

    from benchmarks.parity import cases
    from edgecnn.export.parity import consumer_logits, judge, parity_runners, references

    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    manifest: list[dict] = []

    def add(kind: str, label: str, bug: str, model, proto, x_sets) -> None:  # noqa: ANN001
        key = f"{label}-{bug}".replace(" ", "_").replace("@", "_")
        onnx.save(proto, work / f"{key}.onnx")
        for inputs, x in x_sets:
            expected, exact, injected, _ = references(model, x)
            np.savez(work / f"{key}-{inputs}.npz", x=x, expected=expected, exact=exact,
                     injected=injected)
            host = judge(inputs, expected, exact, injected,
                         consumer_logits(parity_runners(work / f"{key}.onnx"), x))
            manifest.append({"kind": kind, "model": label, "bug": bug, "inputs": inputs,
                             "onnx": f"{key}.onnx", "refs": f"{key}-{inputs}.npz",
                             "host": summary(host)})
            print(f"host  {kind:6s} {label:26s} {bug:10s} {inputs:6s} ratio "
                  f"{manifest[-1]['host']['ratio']:.3g} ok {host.ok}", flush=True)

    for spec in QUICK if quick else HONEST:
        name, res = spec.split("@")
        model = cases.zoo_model(name, int(res))
        x = cases.random_inputs(model, int(res))
        add("honest", spec, "", model, cases.export_fp32(model, x), [("random", x)])
    xd = cases.digits(32, "val", 8)[0]
    for name, alpha in [] if quick else [("mobilenet", 0.25), ("mobilenet_v2", 0.25)]:
        model = cases.digits_bn_model(name, alpha)
        xr = cases.random_inputs(model, 32)
        add("honest", f"{name} digits-BN", "", model, cases.export_fp32(model, xr),
            [("random", xr), ("digits", xd)])
    trained, top1 = cases.trained_model()
    random_mobilenet = cases.zoo_model("mobilenet", 32, alpha=0.25, bn_eps=cases.TRAIN_EPS)
    squeeze = cases.zoo_model("squeezenet1_1", 32)
    xr = cases.random_inputs(trained, 32)
    subjects = [("mobilenet trained", trained, [("random", xr), ("digits", xd)], cases.BUGS),
                ("mobilenet random", random_mobilenet, [("random", xr)], cases.BUGS),
                # zero biases and no BN: "bias" and "bn_eps" plant nothing in it
                ("squeezenet1_1 random", squeeze, [("random", xr)], ("rgb", "pad",
                                                                     "classifier"))]
    for label, model, x_sets, bugs in subjects[:1] if quick else subjects:
        proto = cases.export_fp32(model, xr)
        add("honest", label, "", model, proto, x_sets)
        for bug in bugs:
            planted = cases.bn_eps_bug(model, xr) if bug == "bn_eps" else cases.plant(proto,
                                                                                   bug)
            # RGB/BGR on gray digits changes nothing: the random inputs are its check
            add("bug", label, bug, model, planted,
                [s for s in x_sets if not (bug == "rgb" and s[0] == "digits")])
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"trained MobileNet held-out top-1 {top1:.1%}")
    return manifest


def summary(r) -> dict:  # noqa: ANN001
    return {"ok": r.ok, "onnxruntime_error": r.onnxruntime_error,
            "openvino_error": r.openvino_error, "rounding": r.rounding,
            "ratio": r.ratio, "shape_mismatch": r.shape_mismatch}


def emulated(work: Path) -> None:
    """Under qemu: the consumers on every case, the same verdict; no torch."""
    from numpy._core._multiarray_umath import __cpu_features__

    import onnxruntime
    import openvino

    from edgecnn.export.parity import consumer_logits, judge, parity_runners

    assert "torch" not in sys.modules
    manifest = json.loads((work / "manifest.json").read_text())
    results, kernels = [], set()
    for entry in manifest:
        refs = np.load(work / entry["refs"])
        consumers = parity_runners(work / entry["onnx"])
        if entry["kind"] == "honest":
            for op in consumers[1].compiled.get_runtime_model().get_ops():
                kernels.add(op.get_rt_info()["primitiveType"].astype(str))
        got = consumer_logits(consumers, refs["x"])
        r = judge(entry["inputs"], refs["expected"], refs["exact"], refs["injected"], got)
        results.append({**entry, "emulated": summary(r)})
        print(f"qemu  {entry['kind']:6s} {entry['model']:26s} {entry['bug']:10s} "
              f"{entry['inputs']:6s} ratio {r.ratio:.3g} ok {r.ok}", flush=True)
    cpu = sorted(k for k, v in __cpu_features__.items() if v)
    print(json.dumps({"cpuid_features": cpu, "openvino_kernels": sorted(kernels),
                      "onnxruntime": onnxruntime.__version__,
                      "openvino": openvino.__version__, "results": results}),
          file=open(os.environ["ISA_OUT"], "w"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", nargs="+", default=["Nehalem", "SandyBridge"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--emulated", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emulated:
        return emulated(args.emulated)
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        sys.exit("qemu-x86_64 not found: apt-get install -y qemu-user")
    start = time.time()
    work = WORK / ("quick" if args.quick else "full")
    manifest = prepare(work, args.quick)
    procs = {}
    for model in args.cpus:  # side by side: one per core
        out = work / f"{model}.json"
        env = dict(os.environ, ISA_OUT=str(out), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        procs[model] = (out, subprocess.Popen(
            [qemu, "-cpu", model, sys.executable, __file__, "--emulated", str(work)],
            env=env, stderr=subprocess.PIPE, text=True))
    emulated_runs = {}
    for model, (out, proc) in procs.items():
        _, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"under qemu -cpu {model}: {err.strip().splitlines()[-1:]}")
        emulated_runs[model] = json.loads(out.read_text())
    report(manifest, emulated_runs, args.quick, time.time() - start)


def host_cpu() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    from numpy._core._multiarray_umath import __cpu_features__

    return {"model": fields.get("Model name", "?").strip(),
            "simd_flags": [f for f in flags if f.startswith(("sse", "ssse", "avx", "fma"))],
            "cpuid_features": sorted(k for k, v in __cpu_features__.items() if v)}


def report(manifest: list[dict], runs: dict, quick: bool, seconds: float) -> None:
    import onnxruntime
    import openvino
    import torch

    from edgecnn.export.parity import SLACK

    qemu_version = subprocess.run(["qemu-x86_64", "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0]
    data = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "seconds": round(seconds),
            "slack": SLACK, "host": host_cpu(), "qemu": qemu_version,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "onnxruntime": onnxruntime.__version__,
                         "openvino": openvino.__version__},
            "emulated": {m: {k: v for k, v in r.items() if k != "results"}
                         for m, r in runs.items()},
            "cases": [{**e, **{m: r["results"][i]["emulated"] for m, r in runs.items()}}
                      for i, e in enumerate(manifest)]}
    honest = [c for c in data["cases"] if c["kind"] == "honest"]
    bugs = [c for c in data["cases"] if c["kind"] == "bug"]
    where = ["host", *runs]
    data["verdict"] = {
        w: {"honest_passed": sum(c[w]["ok"] for c in honest), "honest": len(honest),
            "bugs_failed": sum(not c[w]["ok"] for c in bugs), "bugs": len(bugs),
            "worst_honest_ratio": max(c[w]["ratio"] for c in honest),
            "smallest_bug_ratio": min(c[w]["ratio"] for c in bugs
                                      if not c[w]["shape_mismatch"])} for w in where}
    print(json.dumps(data["verdict"], indent=1))
    if quick:
        return
    (HERE / "isa.json").write_text(json.dumps(data, indent=1) + "\n")
    lines = ["| kind | model | bug | inputs | " + " | ".join(
        f"{w} ratio (ok)" for w in where) + " |", "|---|---|---|---|" + "---|" * len(where)]
    for c in data["cases"]:
        cells = [f"{'shape' if c[w]['shape_mismatch'] else format(c[w]['ratio'], '.3g')} "
                 f"({'pass' if c[w]['ok'] else 'FAIL'})" for w in where]
        lines.append(f"| {c['kind']} | {c['model']} | {c['bug']} | {c['inputs']} | "
                     + " | ".join(cells) + " |")
    (HERE / "isa.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
