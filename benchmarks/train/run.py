"""Reproduce the training figures: accuracy on the 1,000 held-out mnist5k digits, seconds per
epoch and images/s of training, next to the data path's images/s alone.

    python benchmarks/train/run.py                   # all four models, one after the other
    python benchmarks/train/run.py --only lenet5     # one of them
    python benchmarks/train/run.py --suite families  # the edge families, 10 epochs each

--suite families trains each edge family 10 epochs on mnist5k at 32 px and checks the bar
of issue 23: held-out top-1 >= 90% and within 3 points of the last epoch's training-batch
top-1 (families.json, families.md; no loader column).

Each model is trained by the real command line (`python -m edgecnn train ...`, the exact
command is recorded) into runs/bench-train/NAME; the results go to benchmarks/train/
results.json and results.md, the curves to benchmarks/train/figures/. Runs are sequential:
on a shared 2-core machine, two at once would measure each other.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# name -> training arguments, found by the tuning recorded in benchmarks/README.md (Training).
RUNS: dict[str, list[str]] = {
    "lenet5": ["lenet5", "--data", "mnist5k", "--epochs", "20"],
    "mobilenet_a0.5_r32": ["mobilenet", "--alpha", "0.5", "--resolution", "32", "--data",
                           "mnist5k", "--epochs", "20"],
    # SqueezeNet has no BatchNorm and a ReLU on its class scores: at 32 px they are 1x1, and
    # a class whose score goes negative for every image never recovers; the model starts its
    # class scores at +1 for that (models/squeezenet.py), and AdamW at batch 64 trains it
    # fast enough for 20 epochs (see the README's tuning table).
    "squeezenet1_1_r32": ["squeezenet1_1", "--resolution", "32", "--data", "mnist5k",
                          "--epochs", "20", "--optimizer", "adamw", "--lr", "2e-3",
                          "--weight-decay", "1e-4", "--warmup-epochs", "2",
                          "--batch-size", "64"],
    "squeezenext23_r32": ["squeezenext23", "--resolution", "32", "--data", "mnist5k",
                          "--epochs", "20", "--batch-size", "32", "--lr", "0.1",
                          "--weight-decay", "5e-5"],
}
# The edge families, 10 epochs on mnist5k at 32 px, each with `edgecnn train`'s defaults (SGD
# lr 0.1, cosine, precise BN) except where a recipe above is recorded for the family:
# SqueezeNet (both versions) and SqueezeNext keep theirs, with 10 epochs.
_R32 = ["--resolution", "32", "--data", "mnist5k", "--epochs", "10"]
FAMILY_RUNS: dict[str, list[str]] = {
    "mobilenet": ["mobilenet", *_R32],
    "mobilenet_v2": ["mobilenet_v2", *_R32],
    "mobilenet_v3_small": ["mobilenet_v3_small", *_R32],
    "mobilenet_v3_large": ["mobilenet_v3_large", *_R32],
    "shufflenet_v2_x1_0": ["shufflenet_v2_x1_0", *_R32],
    "squeezenet1_0": ["squeezenet", *_R32, *RUNS["squeezenet1_1_r32"][7:]],
    "squeezenet1_1": ["squeezenet1_1", *_R32, *RUNS["squeezenet1_1_r32"][7:]],
    "squeezenext23": ["squeezenext23", *_R32, *RUNS["squeezenext23_r32"][7:]],
}
FAMILY_MIN_VAL, FAMILY_MAX_GAP = 0.90, 0.03

TARGETS = {"lenet5": 0.98, "mobilenet_a0.5_r32": 0.97, "squeezenet1_1_r32": 0.97,
           "squeezenext23_r32": 0.97}


def loader_throughput(args: list[str], passes: int = 3) -> float:
    """Images/s of the data path alone (batches + augmenting transform), as training uses it,
    in this process (the same thread count as the training subprocess)."""
    from edgecnn.data import Batches, load_dataset
    from edgecnn.registry import get_spec
    from edgecnn.train.engine import generator, make_transform

    opts = _options(args)
    spec = get_spec(args[0])
    dataset = load_dataset(opts["--data"], split="train")
    resolution = int(opts.get("--resolution", spec.resolution))
    transform = make_transform(dataset, resolution=resolution, in_chans=spec.in_chans,
                               train=True)
    batch = int(opts.get("--batch-size", 128))
    rates = []
    for p in range(passes):
        order, augment = generator(p), generator(100 + p)
        start = time.perf_counter()
        n = 0
        for images, _labels in Batches(dataset, batch, shuffle=True, generator=order,
                                       drop_last=True):
            n += len(transform(images, generator=augment))
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def _options(args: list[str]) -> dict[str, str]:
    return {a: b for a, b in zip(args, args[1:]) if a.startswith("--")}


def _train(name: str, args: list[str], runs_dir: Path, *extra: str
           ) -> tuple[Path, str, float, dict]:
    """One `edgecnn train` run: its directory, the command as shown, wall s, metrics.json."""
    out = runs_dir / name
    cmd = [sys.executable, "-m", "edgecnn", "train", *args, "--out", str(out), "--force",
           *extra]
    shown = "python -m edgecnn train " + " ".join(args) + f" --out {out.relative_to(ROOT)}"
    print(f"\n$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    return out, shown, wall, json.loads((out / "metrics.json").read_text())


def train_one(name: str, args: list[str], runs_dir: Path) -> dict:
    out, shown, wall, doc = _train(name, args, runs_dir)
    rows = doc["epochs"]
    steady = rows[1:] or rows  # epoch 1 pays for warm-up of the allocator and caches
    figures = HERE / "figures"
    figures.mkdir(exist_ok=True)
    shutil.copyfile(out / "curves.png", figures / f"{name}_curves.png")
    return {
        "name": name, "command": shown, "epochs": len(rows),
        "best_val_acc": doc["best_val_acc"], "best_epoch": doc["best_epoch"],
        "final_val_acc": rows[-1]["val_acc"], "target": TARGETS.get(name),
        "seconds_per_epoch": statistics.median(r["train_seconds"] for r in steady),
        "train_images_per_s": statistics.median(r["train_images_per_s"] for r in steady),
        "eval_seconds": statistics.median(r["eval_seconds"] for r in steady),
        "wall_seconds": wall, "loader_images_per_s": loader_throughput(args),
        "curves": f"figures/{name}_curves.png",
    }


def train_family(name: str, args: list[str], runs_dir: Path) -> dict:
    """One edge family's run and the bar it must pass (the last epoch's figures)."""
    out, shown, wall, doc = _train(name, args, runs_dir, "--no-progress")
    last = doc["epochs"][-1]
    gap = last["train_acc"] - last["val_acc"]
    return {"name": name, "command": shown, "epochs": len(doc["epochs"]),
            "train_batches_top1": last["train_acc"], "val_top1": last["val_acc"],
            "best_val_top1": doc["best_val_acc"], "best_epoch": doc["best_epoch"],
            "gap": gap, "passes": passes_bar(last["train_acc"], last["val_acc"]),
            "precise_bn": doc["run"]["config"]["precise_bn"], "wall_seconds": wall,
            "bn_seconds": sum(r.get("bn_seconds") or 0.0 for r in doc["epochs"])}


def passes_bar(train_top1: float, val_top1: float) -> bool:
    """Issue 23's bar: held-out >= 90% and within 3 points of training, either side."""
    return val_top1 >= FAMILY_MIN_VAL and abs(train_top1 - val_top1) <= FAMILY_MAX_GAP + 1e-9


def write_families(results: list[dict], threads: int) -> None:
    machine = _machine(threads)
    path = HERE / "families.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {r["name"]: r for r in old.get("results", [])}
    merged.update({r["name"]: r for r in results})
    ordered = [merged[n] for n in FAMILY_RUNS if n in merged]
    for r in ordered:  # the bar as it is written now, on every stored row
        r["passes"] = passes_bar(r["train_batches_top1"], r["val_top1"])
        r["bn_layers"] = _bn_layers(FAMILY_RUNS[r["name"]][0])
    path.write_text(json.dumps({"machine": machine, "results": ordered}, indent=2) + "\n")
    lines = [
        "# Edge families trained 10 epochs on mnist5k at 32 px (issue 23)", "",
        f"Machine: {machine['cpu']} (CPU family {machine['family']} model {machine['model']}), "
        f"{machine['cores']} cores, shared with other engineers' "
        f"jobs while these ran (the wall times are not figures of speed); torch "
        f"{machine['torch']} with {threads} thread(s), Python {machine['python']}, "
        f"{machine['date']}, edgecnn {machine['edgecnn']} at commit {machine['commit']}. "
        f"CPU flags (SIMD): {machine['flags']}.", "",
        "Reproduce: `OMP_NUM_THREADS=1 python benchmarks/train/run.py --suite families`.", "",
        f"Bar: the last epoch's held-out top-1 >= {100 * FAMILY_MIN_VAL:.0f}% and within "
        f"{100 * FAMILY_MAX_GAP:.0f} points of the last epoch's training-batch top-1 "
        "(gap = training - held-out; the training batches are augmented and see dropout, "
        "so held-out can be the higher one).", "",
        "| family | train batches top-1 | held-out top-1 | gap | best held-out | precise BN "
        "(images x BN layers) | passes | wall s (precise BN s) |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in ordered:
        lines.append(
            f"| {r['name']} | {100 * r['train_batches_top1']:.2f}% | {100 * r['val_top1']:.2f}% "
            f"| {100 * r['gap']:+.2f} | {100 * r['best_val_top1']:.2f}% (epoch "
            f"{r['best_epoch']}) | {r['precise_bn']} x {r['bn_layers']} | "
            f"{'yes' if r['passes'] else 'NO'} | "
            f"{r['wall_seconds']:.0f} ({r['bn_seconds']:.0f}) |")
    lines += ["", "Commands:", "", *[f"- `{r['command']}`" for r in ordered], ""]
    (HERE / "families.md").write_text("\n".join(lines))


def _bn_layers(model: str) -> int:
    """BatchNorm layers in the zoo model (precise BN has nothing to do without them)."""
    from edgecnn.registry import create_model
    from edgecnn.train.precise_bn import batchnorms

    return len(batchnorms(create_model(model, num_classes=10, in_chans=1)))


def _machine(threads: int) -> dict:
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": threads,
            "python": platform.python_version(), "torch": _torch_version(),
            "date": time.strftime("%Y-%m-%d"), "flags": _cpu_flags(),
            "family": _cpuinfo("cpu family"), "model": _cpuinfo("model"),
            "edgecnn": _edgecnn_version(), "commit": _commit()}


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return "?"


def _edgecnn_version() -> str:
    from edgecnn import __version__

    return __version__


def _commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _cpu_flags() -> str:
    """The SIMD flags that decide the kernels torch picks (lscpu's Flags, filtered)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(f for f in line.split(":", 1)[1].split()
                                if f.startswith(("avx", "fma", "sse4", "amx", "f16c")))
    except OSError:
        pass
    return "unknown"


def write_results(results: list[dict], threads: int) -> None:
    machine = {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch_threads": threads,
               "python": platform.python_version(), "torch": _torch_version(),
               "date": time.strftime("%Y-%m-%d")}
    path = HERE / "results.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {r["name"]: r for r in old.get("results", [])}
    merged.update({r["name"]: r for r in results})
    ordered = [merged[n] for n in RUNS if n in merged]
    path.write_text(json.dumps({"machine": machine, "results": ordered}, indent=2) + "\n")

    lines = [
        "# Training on mnist5k (4,000 train / 1,000 held-out real MNIST digits)", "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores (shared), torch "
        f"{machine['torch']} with {threads} thread(s), {machine['date']}. "
        "Reproduce: `python benchmarks/train/run.py` (see the commands below).", "",
        "| model | epochs | best val top-1 | final val top-1 | target | s / epoch | "
        "train img/s | data path img/s | data / train |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ordered:
        lines.append(
            f"| {r['name']} | {r['epochs']} | {100 * r['best_val_acc']:.2f}% "
            f"(epoch {r['best_epoch']}) | {100 * r['final_val_acc']:.2f}% | "
            f">= {100 * r['target']:.0f}% | {r['seconds_per_epoch']:.1f} | "
            f"{r['train_images_per_s']:.0f} | {r['loader_images_per_s']:.0f} | "
            f"{r['loader_images_per_s'] / r['train_images_per_s']:.0f}x |")
    lines += ["", "s / epoch and img/s: medians over epochs 2..N of the training pass alone "
              "(forward, backward, optimizer, and the data path inside it); the data path "
              "column is batching + augmentation alone at the same batch size and resolution, "
              "so 'data / train' says how far the data path is from being the bottleneck.", "",
              "Commands:", ""]
    lines += [f"- `{r['command']}`" for r in ordered]
    lines += ["", *[f"![{r['name']}]({r['curves']})" for r in ordered], ""]
    (HERE / "results.md").write_text("\n".join(lines))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("speed", "families"), default="speed",
                        help="speed: the four recorded runs (results.md); families: the edge "
                        "families' 10-epoch table (families.md)")
    parser.add_argument("--only", nargs="*", choices=[*RUNS, *FAMILY_RUNS],
                        help="a subset of the suite's runs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training and the loader (OMP_NUM_THREADS); "
                        "1 by default: on a shared 2-core box, a second thread waits on a busy "
                        "core and slows training down many times over")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench-train")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    if args.suite == "families":
        for name in args.only or FAMILY_RUNS:  # the table is written after each run
            write_families([train_family(name, FAMILY_RUNS[name], args.runs_dir)],
                           args.threads)
        print((HERE / "families.md").read_text())
        return
    results = [train_one(name, RUNS[name], args.runs_dir) for name in (args.only or RUNS)]
    write_results(results, args.threads)
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
