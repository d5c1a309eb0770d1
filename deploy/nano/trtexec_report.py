"""trtexec's report -> edgecnn bench's JSON record format (for Jetson Nano, JetPack 4.6).

Run by trtexec_bench.sh beside this, on the board's own Python 3.6 with the standard
library only (edgecnn's runtime needs Python 3.10):

    python3 trtexec_report.py version LOG [--need 8.2]  # "8.2.1", from trtexec's banner
    python3 trtexec_report.py record LOG --times T.json --model M --precision P --batch B
        [--tegrastats L --skip N] [--set key=value ...] --out OUT.json

What trtexec prints (TensorRT 8.2; 8.4 and later add percentile(90%) and (95%)):
  &&&& RUNNING TensorRT.trtexec [TensorRT v8201] # trtexec --onnx=...
  [I] === Performance summary ===
  [I] Throughput: 1234.56 qps
  [I] Latency: min = 0.78 ms, max = 2.1 ms, mean = 0.81 ms, median = 0.8 ms, percentile(99%) = 0.95 ms
  [I] GPU Compute Time: min = ..., percentile(99%) = ... ms
  [I] Total Host Walltime: 3.00153 s
`Latency` (H2D + GPU compute + D2H of one query) becomes the record's latency, `Throughput`
(queries per second) times the batch its images per second. The p90 that TensorRT 8.2 does
not print comes from --exportTimes's per-query latencies (their p50/p99 are checked against
the report's).
"""

import argparse
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tegrastats  # noqa: E402  (deploy/tegrastats.py)

# bench's record fields (edgecnn.timing.harness.BenchRecord), in order; trtexec measures the
# latency and throughput ones, the rest are None (not measured).
RECORD_FIELDS = (
    "model", "runtime", "precision", "batch", "device", "iters", "latency_ms_mean",
    "latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "latency_ms_min", "latency_ms_max",
    "latency_ms_std", "throughput_ips", "load_ms", "first_infer_ms", "cold_start_ms",
    "rss_mb_peak", "rss_mb_load", "gpu_memory_mb", "params", "macs", "file_size_mb",
    "gmacs_per_s", "efficiency_pct", "accuracy_top1_pct", "agreement_top1_pct",
    "speedup_vs_baseline", "baseline")
_BANNER = re.compile(r"\[TensorRT v(\d+)\]")
_STATS = re.compile(r"\] (Latency|GPU Compute Time|H2D Latency|D2H Latency|Enqueue Time|"
                    r"End-to-End Host Latency): (.*)$")
_VALUE = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = "
                    r"([-\d.e+]+) ms")
_THROUGHPUT = re.compile(r"\] Throughput: ([\d.e+]+) qps")
_WALLTIME = re.compile(r"\] Total Host Walltime: ([\d.e+]+) s")


class Fail(Exception):
    pass


def parse_version(text):
    """(major, minor, patch) from trtexec's banner: v8201 is 8.2.1, v100300 is 10.3.0."""
    m = _BANNER.search(text)
    if not m:
        raise Fail("no TensorRT version in trtexec's output (no '[TensorRT vNNNN]' banner)")
    v = int(m.group(1))
    if v >= 100000:  # TensorRT 10: major * 10000 + minor * 100 + patch
        return v // 10000, v // 100 % 100, v % 100
    return v // 1000, v // 100 % 10, v % 100


def parse_summary(text):
    """{"Latency": {"min":, "max":, "mean":, "median":, "p99":, ...}, ..., "throughput_qps",
    "walltime_s"} from the last performance summary in the log."""
    if "Performance summary" not in text:
        raise Fail("trtexec's output has no performance summary (did the run fail?)")
    text = text[text.rindex("Performance summary"):]
    out = {}
    for line in text.splitlines():
        m = _STATS.search(line)
        if m:
            values = {}
            for v in _VALUE.finditer(m.group(2)):
                key = v.group(1) if v.group(2) is None else "p%g" % float(v.group(2))
                values[key] = float(v.group(3))
            out[m.group(1)] = values
        m = _THROUGHPUT.search(line)
        if m:
            out["throughput_qps"] = float(m.group(1))
        m = _WALLTIME.search(line)
        if m:
            out["walltime_s"] = float(m.group(1))
    for key in ("Latency", "GPU Compute Time", "throughput_qps"):
        if key not in out:
            raise Fail("trtexec's performance summary has no " + key)
    return out


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    values = sorted(values)
    pos = (len(values) - 1) * q / 100
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def record(text, times, model, precision, batch):
    """One bench record (every BenchRecord field) and the GPU compute time figures."""
    summary = parse_summary(text)
    lat, gpu = summary["Latency"], summary["GPU Compute Time"]
    latencies = [t["latencyMs"] for t in times]
    if not latencies:
        raise Fail("trtexec's --exportTimes file has no queries")
    mean = sum(latencies) / len(latencies)
    rec = dict.fromkeys(RECORD_FIELDS)
    rec.update(model=model, runtime="tensorrt (trtexec)", precision=precision, batch=batch,
               device="cuda", iters=len(latencies), latency_ms_mean=lat["mean"],
               latency_ms_p50=lat["median"],
               latency_ms_p90=lat.get("p90", round(percentile(latencies, 90), 5)),
               latency_ms_p99=lat.get("p99", round(percentile(latencies, 99), 5)),
               latency_ms_min=lat["min"], latency_ms_max=lat["max"],
               latency_ms_std=round(math.sqrt(sum((x - mean) ** 2 for x in latencies)
                                              / len(latencies)), 5),
               throughput_ips=round(summary["throughput_qps"] * batch, 3))
    return rec, {"gpu_compute_ms": gpu, "walltime_s": summary.get("walltime_s"),
                 "queries": len(latencies)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="trtexec_report.py")
    sub = p.add_subparsers(dest="cmd")
    q = sub.add_parser("version")
    q.add_argument("log")
    q.add_argument("--need", default=None, help="fail when older than this (e.g. 8.2)")
    q = sub.add_parser("record")
    q.add_argument("log")
    q.add_argument("--times", required=True)
    q.add_argument("--model", required=True)
    q.add_argument("--precision", required=True)
    q.add_argument("--batch", type=int, default=1)
    q.add_argument("--tegrastats", default=None)
    q.add_argument("--skip", type=int, default=0, help="tegrastats lines before the timing")
    q.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    q.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        with open(args.log) as f:
            text = f.read()
        if args.cmd == "version":
            found = parse_version(text)
            need = tuple(int(v) for v in args.need.split(".")) if args.need else ()
            if found[:len(need)] < need:
                raise Fail("TensorRT %d.%d.%d is older than the %s the jetson-nano recipe "
                           "needs (JetPack 4.6)" % (found + (args.need,)))
            print("%d.%d.%d" % found)
            return 0
        parse_summary(text)  # the log first: a failed run says so, not its missing times
        try:
            with open(args.times) as f:
                times = json.load(f)
        except ValueError:
            raise Fail("%s is not trtexec's --exportTimes JSON" % args.times) from None
        rec, extra = record(text, times, args.model, args.precision, args.batch)
        extra["power"] = None
        if args.tegrastats:
            with open(args.tegrastats) as f:
                lines = f.read().splitlines()[args.skip:]
            seconds = extra["walltime_s"] or rec["iters"] * rec["latency_ms_mean"] / 1000
            extra["power"] = tegrastats.summarize([tegrastats.parse_line(s) for s in lines],
                                                  rec["iters"] * args.batch, seconds)
        conditions = dict(kv.partition("=")[::2] for kv in args.set)
        conditions["tensorrt"] = "%d.%d.%d" % parse_version(text)
        out = {"conditions": conditions, "records": [rec], "trtexec": [extra]}
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2)
        os.replace(tmp, args.out)  # never half a file
    except (Fail, ValueError, OSError, KeyError) as exc:
        print("trtexec_report.py: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
