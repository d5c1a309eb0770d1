"""`edgecnn bench --remote` over loopback SSH against the same command run locally.

    python benchmarks/remote/loopback.py [--pairs 4] [--out benchmarks/remote/loopback]

The device is this machine, reached through a real OpenSSH server on 127.0.0.1
(tests/test_remote.py's loopback_sshd: throwaway keys, its own config and known_hosts).
One artifact (MobileNet v1 alpha 0.5 at 128 px, fp32) is exported here; then:
  1. the first remote run, on an empty device cache: bootstrap (the venv from the wheel and
     a wheelhouse of numpy, onnxruntime, Pillow) + artifact push + bench, wall time, and the
     bootstrap's own time as the command reports it;
  2. `--pairs` pairs of the same command, local then remote, alternating (the artifact is
     already in the device's cache), each a fresh `python -m edgecnn bench` process:
     wall time of the command, and bench's own p50/mean latency.
Each figure carries the 1-minute load average before it: the machine may be shared.
Goals (issue 21): added wall time <= 2 s; latency within 5% of the local run's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BENCH = ["--iters", "200", "--rounds", "5", "--format", "json", "--no-progress"]


def _bench(artifact: Path, remote: list[str], env: dict[str, str]) -> dict:
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "edgecnn", "bench", str(artifact), *BENCH, *remote]  # + threads
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"loopback.py: {' '.join(cmd[2:])}: {proc.stderr.strip()[-300:]}")
    (rec,) = json.loads(proc.stdout)["records"]
    installed = re.search(r"installed in ([\d.]+) s", proc.stderr)
    return {"where": "remote" if remote else "local", "wall_s": round(wall, 3),
            "p50_ms": rec["latency_ms_p50"], "mean_ms": rec["latency_ms_mean"],
            "load_1min_before": round(load, 2), "load_1min_after": round(os.getloadavg()[0], 2),
            "bootstrap_s": float(installed.group(1)) if installed else None}


def _lscpu() -> dict[str, str]:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()
            if k.strip() in ("Model name", "CPU(s)", "Architecture", "Flags")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "remote" / "loopback")
    args = p.parse_args()
    BENCH[:0] = ["--threads", str(args.threads)]
    from edgecnn.export import ExportSpec, ZooSource, export
    from tests.test_remote import _wheelhouse, loopback_sshd

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "mnv1-a0.5-r128"
        export(ExportSpec(ZooSource("mobilenet", alpha=0.5, resolution=128),
                          output=str(artifact)))
        house = _wheelhouse()
        (Path(tmp) / "sshd").mkdir()
        with loopback_sshd(Path(tmp) / "sshd") as _:
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            remote = ["--remote", "edgedev", "--wheelhouse", str(house)]
            first = _bench(artifact, remote, env)
            runs = []
            for _ in range(args.pairs):
                runs += [_bench(artifact, [], env), _bench(artifact, remote, env)]
    local = [r for r in runs if r["where"] == "local"]
    far = [r for r in runs if r["where"] == "remote"]
    pairs = [{"added_wall_s": round(b["wall_s"] - a["wall_s"], 3),
              "p50_ratio": round(b["p50_ms"] / a["p50_ms"], 4),
              "mean_ratio": round(b["mean_ms"] / a["mean_ms"], 4)} for a, b in zip(local, far)]
    import numpy
    import onnxruntime

    from edgecnn import __version__

    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    summary = {
        "date": started, "command": "edgecnn bench ARTIFACT " + " ".join(BENCH)
        + " [--remote edgedev --wheelhouse WHEELS]",
        "artifact": "MobileNet v1 alpha 0.5, 128 px, 1000 classes, fp32 (model.onnx)",
        "machine": _lscpu(), "python": platform.python_version(),
        "versions": {"edgecnn": __version__, "onnxruntime": onnxruntime.__version__,
                     "numpy": numpy.__version__, "openssh": ssh},
        "first_remote_run": first, "runs": runs, "pairs": pairs,
        "median_added_wall_s": round(statistics.median(p["added_wall_s"] for p in pairs), 3),
        "median_p50_ratio": round(statistics.median(p["p50_ratio"] for p in pairs), 4),
        "median_mean_ratio": round(statistics.median(p["mean_ratio"] for p in pairs), 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("runs", "machine")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
