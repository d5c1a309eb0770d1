"""Benchmark records as a terminal table, markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from edgecnn.tables import format_table
from edgecnn.timing.harness import BenchRecord

FORMATS = ("table", "md", "csv", "json")

# (header, field, format) of the readable forms; CSV and JSON carry every field.
COLUMNS = (
    ("host", "host", "{}"),  # only in a --remote run (a column shows when any row has it)
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
    ("RSS MiB", "rss_mb_peak", "{:.0f}"),
    ("MB file", "file_size_mb", "{:.2f}"),
    ("MACs", "macs", "{:,}"),
    ("eff %", "efficiency_pct", "{:.0f}"),
    ("roof %", "roofline_pct", "{:.0f}"),
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
    if conditions.get("interrupted") and records:  # the calls actually timed, not the plan
        done = sorted({r.iters for r in records})
        conditions = {**conditions, "iters_desc": (f"{done[0]}" if len(done) == 1 else
                                                   f"{done[0]}-{done[-1]}")
                      + " (interrupted)"}
    used = [c for c in COLUMNS if any(getattr(r, c[1]) is not None for r in records)]
    rows = [[("-" if getattr(r, f) is None else spec.format(getattr(r, f)))
             for _, f, spec in used] for r in records]
    table = format_table(rows, [h for h, _, _ in used], markdown=fmt == "md")
    return table + "\n\n" + describe_conditions(conditions, markdown=fmt == "md")


def describe_conditions(c: dict[str, Any], *, markdown: bool = False,
                        bench_columns: bool = True) -> str:
    """One paragraph saying exactly what was measured; `bench_columns` False leaves out the
    notes on this table's own columns (eff %, RSS, vs base) for a table without them."""
    pk = ", ".join(f"{k} {v}" for k, v in c.get("packages", {}).items())
    peaks = c.get("peaks") or {}
    peak_text = (f" Peak fp32 matmul: {c.get('peak_gmacs', 0):.1f} GMAC/s" + (
        f", int8 (ONNX Runtime MatMulInteger): {peaks['int8_gmacs']:.1f} GMAC/s, "
        f"copy bandwidth {peaks['bandwidth_gbs']:.1f} GB/s"
        + (f" (within the last-level cache: {peaks['cache_bandwidth_gbs']:.1f})"
           if peaks.get("cache_bandwidth_gbs") else "")
        if peaks.get("int8_gmacs") else ""))
    column_notes = (" (eff % = achieved / peak of the precision; roof % = per-layer roofline / "
                    "p50). RSS: process peak so far (MiB); vs base: baseline p50 / p50 in the "
                    "same group; file sizes in MB = 10^6 bytes.")
    gpu = f"; GPU {c['gpu']} (driver {c.get('gpu_driver', '?')})" if c.get("gpu") else ""
    if c.get("gpu_clock_mhz"):  # a Jetson: the clock it ran at decides its speed
        gpu += f", GPU clock {c['gpu_clock_mhz']:.0f} of {c.get('gpu_max_clock_mhz') or 0:.0f} MHz"
    lines = [
        f"Measured {c.get('time_utc', '?')} on {c.get('cpu', '?')} ({c.get('cpu_cores', '?')} "
        f"cores{gpu}), {c.get('threads') or 'default'} threads per runtime; {pk}.",
        f"Latency: one call on a batch, perf_counter, {c.get('warmup', '?')} warm-up calls, "
        f"{c.get('iters_desc', '?')} timed calls per case in {c.get('rounds', '?')} interleaved "
        f"rounds, {c.get('buffers', '?')} input buffers rotated."
        # the peaks whenever measured (a roofline is read against them); the columns' notes
        # only under the table that has those columns
        + (peak_text + column_notes if bench_columns
           else peak_text + "." if c.get("peak_gmacs") else ""),
        *[f"{why}." for why in c.get("not_measured", [])],
    ]
    for label, kinds in c.get("roofline", {}).items():
        lines.append(f"roofline {label}: " + ", ".join(
            f"{k} {v['bound_ms']:.3f} ms" for k, v in kinds.items() if v["bound_ms"]))
    for label, acc in c.get("accuracy_of", {}).items():
        lines.append(f"top-1 % of {label} on {acc['data']}: "
                     + "; ".join(f"{p} = {stage}" for p, stage in acc["files"].items()))
    for label, line in c.get("tuning", {}).items():
        lines.append(f"{label}: {line}")
    for label, v in c.get("int8_verdicts", {}).items():
        e = v["export"]
        now = ", ".join(f"{k} {x:.2f}x" for k, x in v["measured_speedup"].items())
        lines.append(f"int8 verdict for {label}: "
                     f"{'worth deploying' if e['worth_deploying'] else 'not worth it'} "
                     f"(export: {e['reason']})" + (f"; measured now: {now}" if now else ""))
    return "\n".join(("> " + line) if markdown else line for line in lines)
