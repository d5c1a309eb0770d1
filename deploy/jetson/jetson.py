"""The parts of run_benchmark.sh that are easier in Python (run by it; see README.md):

    python deploy/jetson/jetson.py plan ARTIFACT [--precision P,..] [--batch B,..]
    python deploy/jetson/jetson.py power ARTIFACT --runtime R --precision P --batch B
        --device D --seconds S [--tegrastats]                      # one JSON line
    python deploy/jetson/jetson.py cases PLAN.tsv --device D --runtime R,.. --work DIR
        --warmup W --iters N --seconds S [--tegrastats]            # DIR/bench-N.json, power
    python deploy/jetson/jetson.py report --bench A.json.. --power P.jsonl
        --jetson RECORD.json --out STEM --set key=value..          # STEM.json, STEM.md

`plan` says what an artifact can be benchmarked at: the precisions whose files it holds
(export.json), and batches above 1 only when its batch dimension is dynamic (read from the
ONNX file by the runtime's reader). `power` runs a model in a loop for S seconds while
tegrastats samples the board every 100 ms, and counts only the samples that arrived during
the loop: mean and max input power (W), energy per image (mJ), max temperatures, and the GPU
(GR3D) and memory (EMC) clocks seen. `cases` runs, for each planned artifact, `edgecnn bench`
and then one `power` window per case: what run_benchmark.sh runs inside `python -m
edgecnn.remote.jetson` (the board's conditions around it, as `edgecnn bench --remote` records
them). `report` writes bench's own JSON (its records unchanged, that record and the power
figures added under "jetson") and markdown.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tegrastats  # noqa: E402  (deploy/tegrastats.py, shared with the Nano's script)

FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}
class Fail(Exception):
    """One line for the user, exit status 2."""


# -- plan --------------------------------------------------------------------------------

def plan(artifact: Path, precisions: list[str] | None, batches: list[int]) -> tuple[list[str],
                                                                                    list[int]]:
    from edgecnn.runtime import read_onnx

    report = artifact / "export.json"
    if not report.is_file():
        raise Fail(f"{artifact}: not an artifact directory (no export.json)")
    held = [p for p, name in FILES.items() if (artifact / name).is_file()]
    if precisions is None:
        precisions = held
    missing = [p for p in precisions if p not in held]
    if missing:
        raise Fail(f"{artifact} has no {missing[0]} file ({FILES[missing[0]]}); it holds "
                   f"{', '.join(held)}")
    static = read_onnx(artifact / FILES[precisions[0]]).inputs[0].shape[0]
    if static is None:
        return precisions, batches
    if static not in batches:
        raise Fail(f"{artifact} has a static batch of {static}: batch "
                   f"{','.join(map(str, batches))} needs an export with --dynamic-batch")
    return precisions, [static]  # the other batches need --dynamic-batch


# -- power -------------------------------------------------------------------------------

class Tegrastats:
    """tegrastats --interval 100 in the background, its lines collected as they come."""

    def __init__(self, interval_ms: int = 100) -> None:
        try:
            self.proc = subprocess.Popen(["tegrastats", "--interval", str(interval_ms)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
        except OSError as exc:
            raise Fail(f"cannot start tegrastats on this Jetson: {exc.strerror}") from None
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 5
        while not self.lines:  # the first line: tegrastats is running
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = (self.proc.stderr.read() if self.proc.stderr else "").strip()
                why = err.splitlines()[-1] if err else "no output in 5 s"
                raise Fail(f"tegrastats failed on this Jetson: {why}")
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


def power(artifact: Path, runtime: str, precision: str, batch: int, device: str,
          seconds: float, sample: bool) -> dict[str, Any]:
    """Run the model back to back for `seconds` (after a warm-up), sampled by tegrastats."""
    import numpy as np

    from edgecnn.runtime import load

    # TensorRT builds int8 (and the fp16 file) with FP16 allowed by itself (trt_runner.py)
    options = {"max_batch": max(batch, 1)} if runtime == "tensorrt" else {}
    with load(artifact, runtime=runtime, device=device, precision=precision,
              **options) as model:
        shape = (batch, *model.runner.input.shape[1:])
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        for _ in range(10):
            model.infer(x)
        sampler = Tegrastats() if sample else None
        try:
            first = len(sampler.lines) if sampler else 0
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                model.infer(x)
                calls += 1
            elapsed = time.perf_counter() - t0
            lines = sampler.lines[first:] if sampler else []
        finally:
            if sampler:
                sampler.stop()
        describe = model.describe()
    record: dict[str, Any] = {"model": artifact.name, "runtime": runtime,
                              "precision": precision, "batch": batch, "device": device,
                              "runner": describe, "images": calls * batch,
                              "seconds": round(elapsed, 3)}
    try:
        record["power"] = tegrastats.summarize([tegrastats.parse_line(s) for s in lines],
                                               calls * batch, elapsed) if sampler else None
    except ValueError as exc:
        raise Fail(str(exc)) from None
    return record


# -- cases -----------------------------------------------------------------------------

def cases(plan_file: Path, device: str, runtimes: list[str], bench_args: list[str],
          seconds: float, sample: bool, work: Path) -> int:
    """bench per artifact (PLAN.tsv: artifact, precisions, batches), then a power window per
    case into WORK/power.jsonl; bench's exit status when it fails (its line printed)."""
    with open(work / "power.jsonl", "a") as out:
        for n, line in enumerate(plan_file.read_text().splitlines(), 1):
            artifact, precisions, batches = line.split("\t")
            print(f"{artifact}: {precisions} at batch {batches} on {device} "
                  f"({','.join(runtimes)})", file=sys.stderr, flush=True)
            code = subprocess.run([sys.executable, "-m", "edgecnn", "bench", artifact,
                                   "--runtime", ",".join(runtimes), "--precision", precisions,
                                   "--batch", batches, "--device", device, *bench_args,
                                   "--no-progress", "--format", "json", "-o",
                                   str(work / f"bench-{n:03d}.json")],
                                  stdout=subprocess.DEVNULL).returncode
            if code:
                return code
            for runtime in runtimes:
                for precision in precisions.split(","):
                    for batch in batches.split(","):
                        record = power(Path(artifact), runtime, precision, int(batch), device,
                                       seconds, sample)
                        out.write(json.dumps(record) + "\n")
    return 0


# -- report ------------------------------------------------------------------------------

def report(bench: list[Path], power_file: Path, jetson: Path, conditions: dict[str, str],
           out: Path) -> None:
    from edgecnn.bench.report import render
    from edgecnn.fileio import atomic_write
    from edgecnn.remote.jetson import note
    from edgecnn.timing.harness import BenchRecord

    records: list[dict[str, Any]] = []
    cond: dict[str, Any] = {}
    for path in bench:
        data = json.loads(path.read_text())
        records += data["records"]
        cond = cond or data["conditions"]
    powers = [json.loads(line) for line in power_file.read_text().splitlines() if line]
    # edgecnn.remote.jetson's record (its "power": the whole run) as `bench --remote` has
    # it, then the script's own: the board, and "power": one window per case
    record = json.loads(jetson.read_text())
    cond["jetson"] = dict(record, power_run=record.pop("power", None), **conditions,
                          power=powers)
    cond["jetson_note"] = note({**record, "power": cond["jetson"]["power_run"]})
    atomic_write(out.with_suffix(".json"), json.dumps({"conditions": cond, "records": records},
                                                      indent=2) + "\n")
    table = render([BenchRecord(**r) for r in records], "md", cond)
    rows = ["| model | runtime | prec | batch | mean W | max W | mJ/image | GPU MHz | EMC MHz "
            "| max temp C |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in powers:
        s = p["power"] or {}
        hottest = max((s.get("temp_c_max") or {}).items(), key=lambda kv: kv[1],
                      default=None)
        cells = [p["model"], p["runtime"], p["precision"], str(p["batch"])] + [
            "-" if s.get(k) is None else str(s[k]) for k in
            ("power_w_mean", "power_w_max", "energy_mj_per_image", "gpu_mhz_mean",
             "emc_mhz_mean")] + [f"{hottest[1]:g} ({hottest[0]})" if hottest else "-"]
        rows.append("| " + " | ".join(cells) + " |")
    j = cond["jetson"]
    how = (f"tegrastats every 100 ms during {j.get('power_seconds')} s of back-to-back calls "
           "per case (input rail; energy per image = mean W x time / images)"
           if any(p["power"] for p in powers) else "not measured (CPU mode: no tegrastats)")
    facts = f"> Board: {j.get('board')}; {cond['jetson_note']}. Power per case: {how}."
    atomic_write(out.with_suffix(".md"), table + "\n\n" + "\n".join(rows) + "\n\n" + facts + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jetson.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("plan")
    q.add_argument("artifact", type=Path)
    q.add_argument("--precision", default="")
    q.add_argument("--batch", default="1")
    q = sub.add_parser("power")
    q.add_argument("artifact", type=Path)
    for name in ("runtime", "precision", "device"):
        q.add_argument(f"--{name}", required=True)
    q.add_argument("--batch", type=int, required=True)
    q.add_argument("--seconds", type=float, default=10.0)
    q.add_argument("--tegrastats", action="store_true")
    q = sub.add_parser("cases")
    q.add_argument("plan", type=Path)
    q.add_argument("--device", required=True)
    q.add_argument("--runtime", required=True)
    q.add_argument("--work", type=Path, required=True)
    q.add_argument("--seconds", type=float, default=10.0)
    q.add_argument("--tegrastats", action="store_true")
    q.add_argument("--warmup", default="50")
    q.add_argument("--iters", default="500")
    q = sub.add_parser("report")
    q.add_argument("--bench", type=Path, nargs="+", required=True)
    q.add_argument("--power", type=Path, required=True)
    q.add_argument("--jetson", type=Path, required=True,
                   help="python -m edgecnn.remote.jetson's record of the run")
    q.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="conditions: board, l4t, nvpmodel, jetson_clocks, ...")
    q.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    from edgecnn.errors import EdgeCNNError

    try:
        if args.cmd == "plan":
            wanted = [s for s in args.precision.split(",") if s] or None
            precisions, batches = plan(args.artifact, wanted,
                                       [int(b) for b in args.batch.split(",") if b])
            print(",".join(precisions), ",".join(map(str, batches)))
        elif args.cmd == "power":
            print(json.dumps(power(args.artifact, args.runtime, args.precision, args.batch,
                                   args.device, args.seconds, args.tegrastats)))
        elif args.cmd == "cases":
            return cases(args.plan, args.device, args.runtime.split(","),
                         ["--warmup", args.warmup, "--iters", args.iters], args.seconds,
                         args.tegrastats, args.work)
        else:
            report(args.bench, args.power, args.jetson, dict(kv.partition("=")[::2] for kv in args.set),
                   args.out)
    except (Fail, EdgeCNNError) as exc:
        print(f"jetson.py: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
