"""Benchmark records as a terminal table, markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from edgecnn.bench.harness import BenchRecord
from edgecnn.tables import format_table

FORMATS = ("table", "md", "csv", "json")

# (header, field, format) of the readable forms; CSV and JSON carry every field.
COLUMNS = (
    ("model", "model", "{}"),
    ("runtime", "runtime", "{}"),
    ("prec", "precision", "{}"),
    ("batch", "batch", "{}"),
    ("p50 ms", "latency_ms_p50", "{:.3f}"),
    ("p90 ms", "latency_ms_p90", "{:.3f}"),
    ("p99 ms", "latency_ms_p99", "{:.3f}"),
    ("mean ms", "latency_ms_mean", "{:.3f}"),
    ("std ms", "latency_ms_std", "{:.3f}"),
    ("img/s", "throughput_ips", "{:.1f}"),
    ("vs base", "speedup_vs_baseline", "{:.2f}x"),
    ("cold ms", "cold_start_ms", "{:.0f}"),
    ("RSS MB", "rss_mb_peak", "{:.0f}"),
    ("MB file", "file_size_mb", "{:.2f}"),
    ("MACs", "macs", "{:,}"),
    ("eff %", "efficiency_pct", "{:.0f}"),
    ("top-1 %", "accuracy_top1_pct", "{:.2f}"),
    ("agree %", "agreement_top1_pct", "{:.2f}"),
)


def render(records: Sequence[BenchRecord], fmt: str, conditions: dict[str, Any]) -> str:
    if fmt == "json":
        return json.dumps({"conditions": conditions,
                           "records": [r.to_dict() for r in records]}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(BenchRecord)])
        writer.writeheader()
        for r in records:
            writer.writerow(r.to_dict())
        return buf.getvalue()
    used = [c for c in COLUMNS if any(getattr(r, c[1]) is not None for r in records)]
    rows = [[("-" if getattr(r, f) is None else spec.format(getattr(r, f)))
             for _, f, spec in used] for r in records]
    table = format_table(rows, [h for h, _, _ in used], markdown=fmt == "md")
    return table + "\n\n" + describe_conditions(conditions, markdown=fmt == "md")


def describe_conditions(c: dict[str, Any], *, markdown: bool = False) -> str:
    """One paragraph saying exactly what was measured."""
    pk = ", ".join(f"{k} {v}" for k, v in c.get("packages", {}).items())
    gpu = f"; GPU {c['gpu']} (driver {c.get('gpu_driver', '?')})" if c.get("gpu") else ""
    if c.get("gpu_clock_mhz"):  # a Jetson: the clock it ran at decides its speed
        gpu += f", GPU clock {c['gpu_clock_mhz']:.0f} of {c.get('gpu_max_clock_mhz') or 0:.0f} MHz"
    lines = [
        f"Measured {c.get('time_utc', '?')} on {c.get('cpu', '?')} ({c.get('cpu_cores', '?')} "
        f"cores{gpu}), {c.get('threads') or 'default'} threads per runtime; {pk}.",
        f"Latency: one call on a batch, perf_counter, {c.get('warmup', '?')} warm-up calls, "
        f"{c.get('iters_desc', '?')} timed calls per case in {c.get('rounds', '?')} interleaved "
        f"rounds, {c.get('buffers', '?')} input buffers rotated. "
        f"Peak fp32 matmul: {c.get('peak_gmacs', 0):.1f} GMAC/s (eff % = achieved / peak). "
        "RSS: process peak so far; vs base: baseline p50 / p50 in the same group.",
    ]
    return "\n".join(("> " + line) if markdown else line for line in lines)
