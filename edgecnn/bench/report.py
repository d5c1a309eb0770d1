"""Benchmark records as a terminal table, markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from edgecnn.export.decision import Policy
from edgecnn.tables import format_table
from edgecnn.timing.harness import BenchRecord
from edgecnn.timing.stats import NOISE_LIMIT

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
    ("app MiB", "app_rss_mb_load", "{:.0f}"),
    ("app peak MiB", "app_rss_mb_peak", "{:.0f}"),
    ("MB file", "file_size_mb", "{:.2f}"),
    ("MACs", "macs", "{:,}"),
    ("eff %", "efficiency_pct", "{:.0f}"),
    ("roof %", "roofline_pct", "{:.0f}"),
    ("top-1 %", "accuracy_top1_pct", "{:.2f}"),
    ("agree %", "agreement_top1_pct", "{:.2f}"),
    ("noise %", "noise_pct", "{:.1f}"),
)
# What the footnote says about each column (identity columns need no note); a note is
# printed only under a table that shows its column, and every measured column has one.
COLUMN_NOTES = {
    "p50 ms": "p50 ms, p90 ms, p99 ms, mean ms, std ms: latency of one call on a batch",
    "img/s": "img/s: batch / mean latency",
    "vs base": "vs base: baseline p50 / p50 in the same group",
    "cold ms": "cold ms: load + first call, what an app waits for at start-up",
    "app MiB": "app MiB: resident memory added by load() and the first call, and app peak "
               "MiB: the peak resident memory while inferring, both in a fresh process "
               "running only edgecnn.runtime, as a device app does (the benchmark's own peak "
               "is in the JSON, rss_mb_peak)",
    "MB file": "MB file: the ONNX file, MB = 10^6 bytes",
    "MACs": "MACs: multiply-adds per image",
    "eff %": "eff % = achieved MAC/s at the p50 / measured peak of the row's precision (-: "
             "no peak measured for that precision, e.g. int8 without the onnx package)",
    "roof %": "roof % = per-layer roofline bound / p50",
    "top-1 %": "top-1 %: held-out accuracy of the file (which file and stage: below)",
    "agree %": "agree %: top-1 agreement with the fp32 file in the same runtime",
    "noise %": f"noise %: how far the two halves of the case's run are apart (noisy above "
               f"{100 * NOISE_LIMIT:.0f}%)",
}
NOTED = {"p90 ms": "p50 ms", "p99 ms": "p50 ms", "mean ms": "p50 ms", "std ms": "p50 ms",
         "app peak MiB": "app MiB"}  # columns the note of another column covers
IDENTITY = ("host", "model", "runtime", "prec", "batch")
# eff % and roof % cannot exceed 100: above it, the peak or the bound was measured wrong
# (a busy machine times the peak low); shown as a problem, never as a figure.
OVER_100 = "!>100"


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
    rows = [[_cell(getattr(r, f), h, spec) for h, f, spec in used] for r in records]
    table = format_table(rows, [h for h, _, _ in used], markdown=fmt == "md")
    over = any(OVER_100 in row for row in rows)
    return table + "\n\n" + describe_conditions(conditions, markdown=fmt == "md",
                                                  columns=[h for h, _, _ in used],
                                                  over_100=over)


def _cell(value: Any, header: str, spec: str) -> str:
    if value is None:
        return "-"
    if header in ("eff %", "roof %") and value > 100:
        return OVER_100
    return spec.format(value)


def column_notes(columns: Sequence[str]) -> list[str]:
    """The footnote's notes for exactly these columns."""
    keys = dict.fromkeys(NOTED.get(h, h) for h in columns if h not in IDENTITY)
    return [COLUMN_NOTES[k] for k in keys]


def describe_conditions(c: dict[str, Any], *, markdown: bool = False,
                        bench_columns: bool = True, columns: Sequence[str] = (),
                        over_100: bool = False) -> str:
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
    notes = column_notes(columns) if bench_columns else []
    notes_text = (". Columns: " + "; ".join(notes) + "." if notes else ".")
    if over_100:
        notes_text += (f" {OVER_100}: eff % or roof % above 100 is a measurement problem (the "
                       "peak measured low on a busy machine, or a wrong MAC count), not a "
                       "result.")
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
        + (peak_text + notes_text if bench_columns
           else peak_text + "." if c.get("peak_gmacs") else ""),
        *_conditions_lines(c),
        *_device_lines(c),
        *[f"{why}." for why in c.get("not_measured", [])],
    ]
    for label, kinds in c.get("roofline", {}).items():
        lines.append(f"roofline {label}: " + ", ".join(
            f"{k} {v['bound_ms']:.3f} ms" for k, v in kinds.items() if v["bound_ms"]))
    for label, acc in c.get("accuracy_of", {}).items():
        # "batch": set by run_bench when several batches were asked and a row was scored
        at = f", scored at batch {acc['batch']} for every batch" if acc.get("batch") else ""
        lines.append(f"top-1 % of {label} on {acc['data']}{at}: "
                     + "; ".join(f"{p} = {stage}" for p, stage in acc["files"].items()))
    for label, line in c.get("tuning", {}).items():
        lines.append(f"{label}: {line}")
    for label, v in c.get("int8_verdicts", {}).items():
        e, bar = v["export"], Policy.worth
        now = ", ".join(f"{k} {x:.2f}x" for k, x in v["measured_speedup"].items())
        # the export timed int8 once, on the exporting machine: when this bench's own figures
        # all miss the bar, say so beside it rather than repeat the verdict unchallenged
        below = e.get("worth_deploying") and v["measured_speedup"] and all(
            x < bar for x in v["measured_speedup"].values())
        lines.append(f"int8 verdict for {label}: {verdict_word(e)} (export: {e['reason']})"
                     + (f"; measured now: {now}" if now else "")
                     + (f", below the {bar:g}x bar here: `edgecnn tune` decides for this "
                        "machine" if below else ""))
    return "\n".join(("> " + line) if markdown else line for line in lines)


def verdict_word(verdict: dict[str, Any]) -> str:
    """export.json's int8 verdict in words (Decision.word; an export from before "word" was
    recorded has only worth_deploying)."""
    return verdict.get("word") or ("worth deploying" if verdict.get("worth_deploying")
                                   else "not worth it")


def _device_lines(c: dict[str, Any]) -> list[str]:
    """--remote: which device each `host` is (the table's first lines name the first's)."""
    lines = []
    for label, d in c.get("remote", {}).items():
        isa = ", ".join(d.get("isa") or []) or "none listed"
        lines.append(f"device {label}: {d.get('destination')} ({d.get('hostname')}), "
                     f"{d.get('cpu_model')}, {d.get('arch')}, {d.get('cores')} cores, ISA {isa}"
                     + (f", board {d['board']}" if d.get("board") else "")
                     + f"; Python {d.get('python_version', '?')}, {d.get('edgecnn', '?')}"
                     + (f"; {d['jetson_note']}" if d.get("jetson_note") else ""))
    return lines


def _conditions_lines(c: dict[str, Any]) -> list[str]:
    """Load average and CPU clock before and after timing, and whether the run is noisy."""
    def snap(x: dict[str, Any]) -> str:
        load = "?" if x.get("load_1min") is None else f"{x['load_1min']:.2f}"
        mhz = "?" if x.get("cpu_mhz") is None else f"{x['cpu_mhz']:.0f} MHz"
        return f"load {load}, CPU {mhz}"

    if "before" not in c:
        return []
    lines = [f"Conditions: before timing {snap(c['before'])}; after {snap(c.get('after', {}))}"
             " (1-minute load average; mean CPU clock where the OS reports it)."]
    if c.get("noisy"):
        lines.append("NOISY: these figures cannot be trusted: " + "; ".join(c["noisy"]))
    return lines
