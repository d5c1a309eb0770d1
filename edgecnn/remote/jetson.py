"""A Jetson's conditions around one command on the board: power mode, clocks, power.

    python -m edgecnn.remote.jetson --out RECORD.json [--max-clocks] [--strict] -- COMMAND...

What deploy/jetson/run_benchmark.sh records around its timing, for `edgecnn bench ART
--remote jetson --device cuda`: the workstation runs the device's bench inside this, on the
board, and the record comes back into `conditions.remote[DEVICE].jetson`. Each tool is
used where the device has it; where it is absent (any machine but a Jetson) the record
says so, and nothing else changes:
  nvpmodel -q     the power mode (never changed here: that is the user's choice)
  jetson_clocks   only with --max-clocks: clocks pinned to their maximum for the command
                  (--store first, --restore after; root or passwordless sudo), else left
                  as they are, and the record says which
  tegrastats      sampled every 100 ms while the command runs: input power (mean and max),
                  temperatures, GPU and EMC clocks (edgecnn/remote/tegrastats.py)
deploy/jetson/run_benchmark.sh, for those logged in to the board, runs its benches inside
this too, with --strict: there the board's tools are expected, and nvpmodel or jetson_clocks
failing is one line and exit status 1 before the command starts, never a gap in the record.
The record is written (atomically) whatever the command's exit status, which is this
program's. Standard library and edgecnn's torch-free modules only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

TOOLS = ("nvpmodel", "jetson_clocks", "tegrastats")
RELEASE = "/etc/nv_tegra_release"


class ToolFailed(Exception):
    """--strict: a board tool failed (one line)."""


def _tool(cmd: list[str]) -> tuple[bool, str]:
    """(ok, its first line of output or its last line of error) of a board tool."""
    if os.geteuid() != 0 and os.path.basename(cmd[0]) == "jetson_clocks":
        cmd = ["sudo", "-n", *cmd]  # jetson_clocks needs root; never a password prompt
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    out = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    err = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode:
        return False, (err or out or [f"exit status {proc.returncode}"])[-1]
    return True, out[0] if out else ""


class Sampler:
    """tegrastats --interval 100 while the command runs, its lines kept as they come."""

    def __init__(self, exe: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([exe, "--interval", "100"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def stop(self) -> list[str]:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.thread.join(timeout=5)
        return [ln for ln in self.lines if ln]


def run(command: list[str], *, max_clocks: bool = False, strict: bool = False
        ) -> tuple[int, dict[str, Any]]:
    """(the command's exit status, the record) of `command` run with the board's tools;
    `strict`: nvpmodel or jetson_clocks failing raises ToolFailed, the command not run."""
    from edgecnn.remote import tegrastats

    found = {t: shutil.which(t) for t in TOOLS}
    record: dict[str, Any] = {"tools": {t: p or "absent" for t, p in found.items()}}
    try:
        with open(RELEASE) as f:
            record["l4t"] = f.readline().strip()
    except OSError:
        record["l4t"] = f"absent (no {RELEASE})"
    if found["nvpmodel"]:
        ok, text = _tool([found["nvpmodel"], "-q"])
        if not ok and strict:
            raise ToolFailed(f"nvpmodel failed on this Jetson: {text}")
        record["power_mode"] = text if ok else f"unknown: nvpmodel -q failed: {text}"
    else:
        record["power_mode"] = "not recorded: no nvpmodel on the device"
    store = None
    if not max_clocks:
        record["clocks"] = "as they were (not pinned: --max-clocks pins them)"
    elif not found["jetson_clocks"]:
        record["clocks"] = "as they were: --max-clocks asked, but no jetson_clocks on the device"
    else:
        store = tempfile.mkstemp(prefix="edgecnn-clocks-")[1]
        ok, text = _tool([found["jetson_clocks"], "--store", store])
        if ok:
            ok, text = _tool([found["jetson_clocks"]])
            if not ok:  # stored, not pinned: back to what was stored
                _tool([found["jetson_clocks"], "--restore", store])
        if not ok:
            os.unlink(store)
            store = None
            if strict:
                raise ToolFailed(f"jetson_clocks failed on this Jetson: {text or 'needs root'}")
        record["clocks"] = ("pinned to maximum by jetson_clocks for the run (--max-clocks), "
                            "restored after" if ok else
                            f"as they were: jetson_clocks failed ({text or 'needs root'})")
    sampler = Sampler(found["tegrastats"]) if found["tegrastats"] else None
    start = time.monotonic()
    try:
        code = subprocess.call(command)
    finally:
        seconds = time.monotonic() - start
        lines = sampler.stop() if sampler else []
        if store:
            _tool([found["jetson_clocks"], "--restore", store])
            os.unlink(store)
    if not sampler:
        record["power"] = "not sampled: no tegrastats on the device"
    else:
        try:  # the whole command: per-image energy is not meaningful here, so left out
            summary = tegrastats.summarize([tegrastats.parse_line(s) for s in lines], 1,
                                           seconds)
            summary.pop("energy_mj_per_image", None)
            record["power"] = {**summary, "seconds": round(seconds, 2)}
        except ValueError as exc:
            record["power"] = f"not measured: {exc}"
    return code, record


def note(record: dict[str, Any]) -> str:
    """The record in one line, for the bench table's device line."""
    absent = [t for t, p in record.get("tools", {}).items() if p == "absent"]
    if len(absent) == len(TOOLS):
        asked = "--max-clocks" in record.get("clocks", "") and "asked" in record["clocks"]
        return ("Jetson tools absent (nvpmodel, jetson_clocks, tegrastats): not a Jetson"
                + (f"; clocks {record['clocks']}" if asked else ""))
    power = record.get("power")
    watts = (f"input power {power['power_w_mean']} W mean, {power['power_w_max']} W max "
             f"({power['rail']}, {power['samples']} samples)" if isinstance(power, dict)
             else str(power))
    return (f"{record.get('l4t')}; power mode {record.get('power_mode')}; clocks "
            f"{record.get('clocks')}; {watts}")


def main(argv: list[str] | None = None) -> int:
    from edgecnn.fileio import atomic_write

    p = argparse.ArgumentParser(prog="python -m edgecnn.remote.jetson",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the record (JSON)")
    p.add_argument("--max-clocks", action="store_true",
                   help="pin the clocks with jetson_clocks for the command, restore after")
    p.add_argument("--strict", action="store_true",
                   help="a Jetson: nvpmodel or jetson_clocks failing is an error (exit 1)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command after --")
    try:
        code, record = run(command, max_clocks=args.max_clocks, strict=args.strict)
    except ToolFailed as exc:
        print(f"{p.prog}: {exc}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, json.dumps(record, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
