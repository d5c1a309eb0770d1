"""Reproduce the training figures: accuracy on the 1,000 held-out mnist5k digits, seconds per
epoch and images/s of training, next to the data path's images/s alone.

    python benchmarks/train/run.py                   # all four models, one after the other
    python benchmarks/train/run.py --only lenet5     # one of them

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


def train_one(name: str, args: list[str], runs_dir: Path) -> dict:
    out = runs_dir / name
    cmd = [sys.executable, "-m", "edgecnn", "train", *args, "--out", str(out), "--force"]
    shown = "python -m edgecnn train " + " ".join(args) + f" --out {out.relative_to(ROOT)}"
    print(f"\n$ {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    doc = json.loads((out / "metrics.json").read_text())
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
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="a subset of the runs")
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
    results = [train_one(name, RUNS[name], args.runs_dir) for name in (args.only or RUNS)]
    write_results(results, args.threads)
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
