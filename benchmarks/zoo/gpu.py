"""The edge families on a GPU: PyTorch eager, torch.compile and CUDA graphs, in fp32, fp16 and
channels_last, with GPU memory, beside ONNX Runtime on the CPU at 16 threads.

    python benchmarks/zoo/gpu.py                          # on a machine with an NVIDIA GPU
    python benchmarks/zoo/gpu.py --device cpu --quick -o /tmp/gpu-check   # what CI runs

On CUDA it writes benchmarks/zoo/results-gpu.{json,md}; budget: about 8 minutes for the
seven families at batch 1 and 32 (2 s of timed calls per case). Every (model, batch) is
one interleaved group of the bench harness: all its cases get a block of calls per round,
after a settle pause, CUDA synchronized after each call. `--quick` keeps one small model,
batches 1 and 2, eager mode, a few calls: it checks the script end to end on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EDGE = ("mobilenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
        "squeezenet1_1", "squeezenext23", "shufflenet_v2_x1_0")


def cases_for(name: str, batch: int, device: str, modes: tuple[str, ...], workdir: Path,
              ort_threads: int, resolution: int | None, alpha: float) -> list:
    import torch

    from edgecnn.bench.torch_runner import TorchOptions, TorchRunner
    from edgecnn.export.api import export
    from edgecnn.export.source import init_bn_stats
    from edgecnn.export.spec import ExportSpec, ZooSource
    from edgecnn.registry import create_model
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    from edgecnn.timing.harness import BenchCase

    art = workdir / name  # one export per model, every batch size (dynamic batch)
    if not (art / "export.json").is_file():
        export(ExportSpec(ZooSource(name, alpha=alpha, resolution=resolution, num_classes=10),
                          dynamic_batch=True, output=str(art)))
    report = json.loads((art / "export.json").read_text())
    shape = (report["in_chans"], report["resolution"], report["resolution"])
    model = create_model(name, alpha=alpha, num_classes=10)
    init_bn_stats(model, torch.randn(8, *shape))
    model.eval()
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    memory = (lambda: torch.cuda.max_memory_allocated() / 2**20) if cuda else None
    label = f"{name}-r{shape[-1]}"
    base = dict(model=label, batch=batch, input_shape=shape, macs=report["macs"]["after"],
                params=report["params"]["after"])
    cases = []
    for mode in modes:
        for precision in (("fp32", "fp16") if cuda else ("fp32",)):
            for channels_last in (False, True):
                opts = TorchOptions(mode=mode, half=precision == "fp16",
                                    channels_last=channels_last, threads=ort_threads)
                layout = "channels_last" if channels_last else "contiguous"
                cases.append(BenchCase(
                    runtime=f"torch-{mode} {layout}", precision=precision, sync=sync,
                    gpu_memory_mb=memory, **base,
                    make_runner=lambda o=opts: TorchRunner(model, shape, device, o)))
    path = art / "model.onnx"
    cases.append(BenchCase(runtime=f"onnxruntime cpu {ort_threads}t", precision="fp32",
                           path=path, **base, make_runner=lambda: OrtRunner(
                               path, "cpu", OrtOptions(threads=ort_threads))))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (the figures) or cpu (a check)")
    ap.add_argument("--quick", action="store_true", help="one small model, few calls")
    ap.add_argument("--models", default=",".join(EDGE))
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per case")
    ap.add_argument("-o", "--out", type=Path, default=None, help="default: benchmarks/zoo")
    args = ap.parse_args(argv)

    import torch

    from edgecnn.bench.machine import conditions
    from edgecnn.bench.report import render
    from edgecnn.fileio import atomic_write
    from edgecnn.timing.harness import add_speedups, run_group
    from edgecnn.timing.loop import TimingPlan

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --quick to check the script")
    ort_threads = 16 if not args.quick else min(16, os.cpu_count() or 1)
    models, batches = args.models.split(","), tuple(int(b) for b in args.batches.split(","))
    modes: tuple[str, ...] = ("eager", "compile", "cudagraphs")
    plan = TimingPlan(warmup=10, iters=None, duration_s=args.seconds)
    resolution, alpha = None, 1.0
    if args.quick:
        models, batches, modes, resolution, alpha = ["mobilenet"], (1, 2), ("eager",), 32, 0.25
        plan = TimingPlan(warmup=2, iters=6)
    elif not args.device.startswith("cuda"):
        modes = ("eager", "compile")  # CUDA graphs need CUDA
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for batch in batches:
                group = cases_for(name, batch, args.device, modes, Path(tmp), ort_threads,
                                  resolution, alpha)
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                records += run_group(group, plan, peak_gmacs=None, rounds=3 if args.quick else 5)
                print(f"{name} batch {batch}: " + ", ".join(
                    f"{r.runtime} {r.precision} {r.latency_ms_p50:.3f} ms"
                    for r in records[-len(group):]), flush=True)
    add_speedups(records, baseline=lambda r: r.runtime.startswith("torch-eager contiguous")
                 and r.precision == "fp32")
    cond = conditions(ort_threads) | {"device": args.device, "quick": args.quick,
                                      "command": "python benchmarks/zoo/gpu.py "
                                                 + " ".join(argv or sys.argv[1:])}
    out = args.out or HERE
    out.mkdir(parents=True, exist_ok=True)
    stem = "results-gpu" if args.device.startswith("cuda") else "results-gpu-check"
    atomic_write(out / f"{stem}.json", render(records, "json", cond) + "\n")
    atomic_write(out / f"{stem}.md", render(records, "md", cond) + "\n")
    print(render(records, "table", cond))
    return 0


if __name__ == "__main__":
    sys.exit(main())
