"""The Jetson and Jetson Nano scripts, checked off the board: shellcheck, the benchmark's
CPU mode end to end (real `edgecnn bench`, real artifacts), the trtexec report parser and
the tegrastats parser on recorded output in the tools' own formats, and every bad input
that can be told apart without a board (each one line, non-zero).

What needs a board and is not run here: TensorRT engines, the CUDA provider, nvpmodel,
jetson_clocks and tegrastats themselves (a Jetson whose tool fails is simulated by a
stand-in that exits 1: only the script's reaction to it is under test)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.export_helpers import CostTimer

DEPLOY = ROOT / "deploy"
RUN_BENCH = DEPLOY / "jetson" / "run_benchmark.sh"
TRTEXEC_BENCH = DEPLOY / "nano" / "trtexec_bench.sh"
sys.path.insert(0, str(DEPLOY))
sys.path.insert(0, str(DEPLOY / "nano"))
import tegrastats  # noqa: E402
import trtexec_report  # noqa: E402


def _run(*cmd: str | Path, env: dict | None = None, timeout: float = 300
         ) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHON=sys.executable, **(env or {}))
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=full,
                          timeout=timeout, cwd=ROOT)


def _one_line_error(proc: subprocess.CompletedProcess, status: int, *needles: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An Orin artifact (fp32 + int8, dynamic batch), a static fp32-only one, and a Nano one."""
    from edgecnn.export import ExportSpec, Int8Spec, ZooSource, export

    root = tmp_path_factory.mktemp("jetson")
    source = ZooSource("mobilenet", alpha=0.25, resolution=32, num_classes=10)
    return {
        "orin": export(ExportSpec(source, target="jetson-orin",
                                  int8=Int8Spec("random", calib_samples=8,  # costs counted
                                                timer=CostTimer(0.5)), dynamic_batch=True,
                                  output=str(root / "orin"), force=True)).path,
        "static": export(ExportSpec(source, output=str(root / "static"), force=True)).path,
        "nano": export(ExportSpec(source, target="jetson-nano", output=str(root / "nano"),
                                  force=True)).path,
    }


def test_every_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run("apt-get update -q && apt-get install -y -q shellcheck", shell=True,
                       capture_output=True, timeout=300)
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed and could not be: apt-get install shellcheck",
                    pytrace=False)
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert len(scripts) >= 5
    proc = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _stand_ins(tmp_path: Path, **bodies: str) -> Path:
    """A folder of stand-in board tools (shell bodies), to put first on PATH."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, body in bodies.items():
        (tools / name).write_text(f"#!/bin/sh\n{body}\n")
        (tools / name).chmod(0o755)
    return tools


def test_cpu_mode_benchmarks_what_each_artifact_holds(artifacts: dict, tmp_path: Path) -> None:
    """The CPU mode, with stand-ins of the board's tools on PATH (answering as JetPack 6's
    do): the script's conditions come from edgecnn.remote.jetson, the code `edgecnn bench
    --remote` runs on a board: the power mode it read, the clocks pinned (MAX_CLOCKS=1) and
    restored around the whole run, tegrastats sampled during it."""
    log = tmp_path / "tools.log"
    tools = _stand_ins(tmp_path, nvpmodel='echo "NV Power Mode: 15W"; echo 0',
                       jetson_clocks=f'echo "jetson_clocks $*" >> {log}',
                       tegrastats=f'trap "exit 0" TERM; while :; do echo "{ORIN_NANO}"; '
                                  'sleep 0.1; done')
    out = tmp_path / "out"
    proc = _run("bash", RUN_BENCH, "--cpu", artifacts["orin"], artifacts["static"],
                env={"ITERS": "5", "WARMUP": "1", "POWER_SECONDS": "0.2", "BATCH": "1,4",
                     "OUT_DIR": str(out), "MAX_CLOCKS": "1",
                     "PATH": f"{tools}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    (result,) = out.glob("*.json")
    data = json.loads(result.read_text())
    cases = {(r["model"], r["runtime"], r["precision"], r["batch"], r["device"])
             for r in data["records"]}
    orin, static = artifacts["orin"].name, artifacts["static"].name
    assert cases == {(orin, "onnxruntime", p, b, "cpu") for p in ("fp32", "int8")
                     for b in (1, 4)} | {(static, "onnxruntime", "fp32", 1, "cpu")}
    for r in data["records"]:
        assert r["latency_ms_p50"] > 0 and r["throughput_ips"] > 0
    jetson = data["conditions"]["jetson"]
    assert jetson["device"] == "cpu" and jetson["max_clocks"] == "1"
    # edgecnn.remote.jetson's record, around the whole run
    assert jetson["tools"]["nvpmodel"] == str(tools / "nvpmodel")
    assert jetson["power_mode"] == "NV Power Mode: 15W"
    assert jetson["clocks"].startswith("pinned to maximum by jetson_clocks")
    calls = log.read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [["jetson_clocks", "--store"], ["jetson_clocks"],
                                              ["jetson_clocks", "--restore"]]
    assert jetson["power_run"]["rail"] == "VDD_IN" and jetson["power_run"]["samples"] > 0
    assert "power mode NV Power Mode: 15W" in data["conditions"]["jetson_note"]
    # and the script's own: one power window per case (no per-case tegrastats in CPU mode)
    assert len(jetson["power"]) == len(cases)
    assert all(p["power"] is None and p["images"] > 0 for p in jetson["power"])
    md = result.with_suffix(".md").read_text()
    assert "| p50 ms |" in md and "| mJ/image |" in md
    assert "Power per case: not measured (CPU mode: no tegrastats)" in md
    assert "power mode NV Power Mode: 15W" in md and "7.758 W mean" in md


def test_not_a_jetson_is_one_line(artifacts: dict, tmp_path: Path) -> None:
    nowhere = {"JETSON_RELEASE": str(tmp_path / "nv_tegra_release")}
    _one_line_error(_run("bash", RUN_BENCH, artifacts["orin"], env=nowhere), 2,
                    "not a Jetson", "--cpu")
    _one_line_error(_run("bash", DEPLOY / "jetson" / "setup.sh", env=nowhere), 1,
                    "not a Jetson")
    _one_line_error(_run("bash", TRTEXEC_BENCH, artifacts["nano"], "fp16", env=nowhere), 2,
                    "not a Jetson")


def test_a_jetson_whose_tool_fails_is_told_apart(artifacts: dict, tmp_path: Path) -> None:
    """A board (its release file) whose nvpmodel fails, or that lacks tegrastats."""
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic\n")
    tools = _stand_ins(tmp_path, nvpmodel="echo 'NVPM ERROR: failed to read PM config' >&2; "
                       "exit 1", jetson_clocks="exit 0", tegrastats="exit 0")
    env = {"JETSON_RELEASE": str(release), "PATH": f"{tools}:{os.environ['PATH']}",
           "OUT_DIR": str(tmp_path / "out")}
    # told by edgecnn.remote.jetson --strict, before anything runs
    _one_line_error(_run("bash", RUN_BENCH, artifacts["orin"], env=env), 1,
                    "edgecnn.remote.jetson: nvpmodel failed on this Jetson",
                    "failed to read PM config")
    assert not (tmp_path / "out").exists()
    (tools / "tegrastats").unlink()
    _one_line_error(_run("bash", RUN_BENCH, artifacts["orin"], env=env), 1,
                    "tegrastats not found on this Jetson")


def test_an_artifact_without_the_asked_precision(artifacts: dict, tmp_path: Path) -> None:
    _one_line_error(_run("bash", RUN_BENCH, "--cpu", artifacts["orin"],
                         env={"PRECISION": "fp16", "OUT_DIR": str(tmp_path)}), 2,
                    "has no fp16 file (model.fp16.onnx)", "it holds fp32, int8")
    _one_line_error(_run("bash", TRTEXEC_BENCH, artifacts["nano"], "int8"), 2,
                    "has no int8 file (model.int8.onnx)")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_batch_a_static_artifact_cannot_take(artifacts: dict, tmp_path: Path) -> None:
    _one_line_error(_run("bash", RUN_BENCH, "--cpu", artifacts["static"],
                         env={"BATCH": "4,8", "OUT_DIR": str(tmp_path)}), 2,
                    "has a static batch of 1", "--dynamic-batch")


def test_an_artifact_of_another_target_given_to_trtexec(artifacts: dict) -> None:
    _one_line_error(_run("bash", TRTEXEC_BENCH, artifacts["orin"]), 2,
                    "was exported for jetson-orin (opset 17", "--target jetson-nano")


# -- trtexec's report, as TensorRT 8.2 and 8.6 print it -----------------------------------

def _trtexec_log(version: str, percentiles: str) -> str:
    stamp = "[12/01/2026-07:00:00]"
    rows = [("Latency", "0.781 ms", "2.113 ms", "0.8112 ms", "0.8 ms"),
            ("End-to-End Host Latency", "0.79 ms", "2.2 ms", "0.83 ms", "0.82 ms"),
            ("Enqueue Time", "0.2 ms", "0.4 ms", "0.25 ms", "0.24 ms"),
            ("H2D Latency", "0.01 ms", "0.02 ms", "0.011 ms", "0.011 ms"),
            ("GPU Compute Time", "0.7 ms", "2.0 ms", "0.72 ms", "0.71 ms"),
            ("D2H Latency", "0.003 ms", "0.01 ms", "0.004 ms", "0.004 ms")]
    lines = [f"&&&& RUNNING TensorRT.trtexec [TensorRT v{version}] # trtexec "
             "--loadEngine=fp16.engine --duration=10 --exportTimes=times.json",
             f"{stamp} [I] Starting inference",
             f"{stamp} [I] Warmup completed 600 queries over 500 ms",
             f"{stamp} [I] Timing trace has 12000 queries over 10.0013 s",
             f"{stamp} [I] ",
             f"{stamp} [I] === Trace details ===",
             f"{stamp} [I] === Performance summary ===",
             f"{stamp} [I] Throughput: 1199.84 qps"]
    for name, lo, hi, mean, median in rows:
        lines.append(f"{stamp} [I] {name}: min = {lo}, max = {hi}, mean = {mean}, "
                     f"median = {median}, {percentiles}")
    lines += [f"{stamp} [I] Total Host Walltime: 10.0013 s",
              f"{stamp} [I] Total GPU Compute Time: 8.6 s",
              "&&&& PASSED TensorRT.trtexec [TensorRT v8201] # trtexec --loadEngine=fp16.engine"]
    return "\n".join(lines) + "\n"


def _times(n: int = 200) -> list[dict]:
    """--exportTimes's per-query records: latencies 0.80 .. 0.999 ms."""
    return [{"startEnqMs": i, "endEnqMs": i + 0.2, "startH2dMs": i, "endH2dMs": i + 0.01,
             "startComputeMs": i + 0.01, "endComputeMs": i + 0.7, "startD2hMs": i + 0.7,
             "endD2hMs": i + 0.71, "h2dMs": 0.01, "computeMs": 0.7, "d2hMs": 0.01,
             "latencyMs": 0.8 + i / 1000, "endToEndMs": 0.82} for i in range(n)]


def test_trtexec_82_report_becomes_a_bench_record(tmp_path: Path) -> None:
    from edgecnn.bench.report import render
    from edgecnn.timing.harness import BenchRecord

    log = tmp_path / "fp16.log"
    log.write_text(_trtexec_log("8201", "percentile(99%) = 0.95 ms"))
    times = tmp_path / "times.json"
    times.write_text(json.dumps(_times()))
    lines = tmp_path / "tegrastats.log"
    nano = ("RAM 1544/3956MB (lfb 117x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
            "CPU [12%@1479,3%@1479,5%@1479,2%@1479] EMC_FREQ 35%@1600 GR3D_FREQ 99%@921 "
            "APE 25 PLL@31C CPU@34.5C PMIC@100C GPU@33C AO@40.5C thermal@33.75C "
            "POM_5V_IN {}/4500 POM_5V_GPU 2100/2000 POM_5V_CPU 612/600")
    lines.write_text("\n".join([nano.format(2000)] * 3 + [nano.format(5000), nano.format(
        6000)]) + "\n")
    out = tmp_path / "out.json"
    assert trtexec_report.main(["record", str(log), "--times", str(times), "--model", "mnv1",
                                "--precision", "fp16", "--batch", "2", "--tegrastats",
                                str(lines), "--skip", "3", "--set", "board=NVIDIA Jetson Nano",
                                "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    (rec,) = data["records"]
    BenchRecord(**rec)  # bench's own record format, every field
    assert (rec["latency_ms_p50"], rec["latency_ms_p99"], rec["latency_ms_mean"]) == (
        0.8, 0.95, 0.8112)  # from the report
    assert rec["latency_ms_p90"] == pytest.approx(0.9791)  # 8.2 lacks it: from the times
    assert rec["throughput_ips"] == pytest.approx(2 * 1199.84)
    assert rec["runtime"] == "tensorrt (trtexec)" and rec["iters"] == 200
    (extra,) = data["trtexec"]
    assert extra["gpu_compute_ms"]["median"] == 0.71 and extra["gpu_compute_ms"]["p99"] > 0
    power = extra["power"]
    assert power["rail"] == "POM_5V_IN" and power["samples"] == 2  # 3 skipped
    assert power["power_w_mean"] == 5.5 and power["power_w_max"] == 6.0
    # 5.5 W over the 10.0013 s wall time of 200 queries x 2 images
    assert power["energy_mj_per_image"] == pytest.approx(5.5 * 10.0013 / 400 * 1000, rel=1e-4)
    assert power["temp_c_max"]["GPU"] == 33 and power["gpu_mhz_mean"] == 921
    assert data["conditions"] == {"board": "NVIDIA Jetson Nano", "tensorrt": "8.2.1"}
    assert "| p50 ms |" in render([BenchRecord(**rec)], "md", data["conditions"])


def test_trtexec_86_report_gives_its_own_p90() -> None:
    text = _trtexec_log("8601", "percentile(90%) = 0.9 ms, percentile(95%) = 0.93 ms, "
                                "percentile(99%) = 0.97 ms")
    rec, extra = trtexec_report.record(text, _times(), "m", "int8", 1)
    assert (rec["latency_ms_p90"], rec["latency_ms_p99"]) == (0.9, 0.97)
    assert extra["gpu_compute_ms"]["p95"] == 0.93


def test_trtexec_versions_and_a_too_old_tensorrt(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert trtexec_report.parse_version("[TensorRT v8201]") == (8, 2, 1)
    assert trtexec_report.parse_version("[TensorRT v8001]") == (8, 0, 1)
    assert trtexec_report.parse_version("[TensorRT v100300]") == (10, 3, 0)
    log = tmp_path / "help.log"
    log.write_text(_trtexec_log("8001", "percentile(99%) = 1 ms"))
    assert trtexec_report.main(["version", str(log), "--need", "8.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["trtexec_report.py: TensorRT 8.0.1 is older than the 8.2 the jetson-nano "
                   "recipe needs (JetPack 4.6)"]
    log.write_text(_trtexec_log("8201", "percentile(99%) = 1 ms"))
    assert trtexec_report.main(["version", str(log), "--need", "8.2"]) == 0
    log.write_text("[E] Error[4]: [network.cpp::validate::2633] Error Code 4: Internal Error\n")
    times = tmp_path / "times.json"
    times.write_text(json.dumps(_times()))
    assert trtexec_report.main(["record", str(log), "--times", str(times), "--model", "m",
                                "--precision", "fp16", "--out", str(tmp_path / "o.json")]) == 2
    assert "no performance summary" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


# -- tegrastats, as JetPack 6 prints it on Orin Nano and AGX Orin --------------------------

ORIN_NANO = ("12-01-2026 07:00:00 RAM 2298/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
             "CPU [1%@729,0%@729,0%@729,0%@729,off,off] EMC_FREQ 12%@2133 "
             "GR3D_FREQ 97%@[624,624] NVENC off NVDEC off NVJPG off NVJPG1 off VIC off OFA off "
             "APE 200 cpu@47.5C soc2@45.8C soc0@46.1C gpu@49.9C tj@50.1C soc1@46C "
             "VDD_IN 7758mW/6100mW VDD_CPU_GPU_CV 2477mW/1900mW VDD_SOC 1431mW/1400mW")
AGX_ORIN = ("RAM 4722/30536MB (lfb 6300x4MB) CPU [2%@1190,1%@1190] EMC_FREQ 0%@3199 "
            "GR3D_FREQ 0%@[0,0] cpu@44.75C tboard@34C soc2@41.5C tdiode@36.25C gpu@-256C "
            "VDD_GPU_SOC 2389mW/2389mW VDD_CPU_CV 398mW/398mW VIN_SYS_5V0 2716mW/2716mW")


def test_tegrastats_lines_of_orin_boards() -> None:
    s = tegrastats.parse_line(ORIN_NANO)
    assert s["rails_mw"] == {"VDD_IN": 7758, "VDD_CPU_GPU_CV": 2477, "VDD_SOC": 1431}
    assert s["gpu_mhz"] == 624 and s["emc_mhz"] == 2133 and s["temps_c"]["tj"] == 50.1
    assert tegrastats.input_power_w(s) == (7.758, "VDD_IN")
    agx = tegrastats.parse_line(AGX_ORIN)
    assert "gpu" not in agx["temps_c"]  # -256 C: the sensor is off
    assert tegrastats.input_power_w(agx) == pytest.approx(
        (5.503, "VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0"))
    summary = tegrastats.summarize([s, s], images=1000, seconds=2.0)
    assert summary["energy_mj_per_image"] == pytest.approx(7.758 * 2.0 / 1000 * 1000)
    with pytest.raises(ValueError, match="no power readings"):
        tegrastats.summarize([tegrastats.parse_line("RAM 1/2MB")], images=1, seconds=1)
