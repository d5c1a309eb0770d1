"""edgecnn's tuned int8 beside the quantizers a user would pick instead, timed side by side.

    # NNCF lives in a venv of its own (never in the project's), on top of the project's:
    python3.11 -m venv /work/bench-venv
    echo /work/main/.venv/lib/python3.11/site-packages \
        > /work/bench-venv/lib/python3.11/site-packages/main-venv.pth
    /work/bench-venv/bin/pip install nncf==3.4.0

    /work/bench-venv/bin/python benchmarks/tune/peers.py               # the figures (~12 min)
    /work/bench-venv/bin/python benchmarks/tune/peers.py --quick       # a smoke run
    /work/bench-venv/bin/python benchmarks/tune/peers.py --models mobilenet-a0.5 --quick

Per model (224 px, batch 1, 1000 classes, initialized weights with BN statistics from a
batch: `edgecnn export`'s own zoo path, export/source.py `init_bn_stats`):
1. `edgecnn export NAME --int8 --calib-data random --calib-samples 64` writes model.onnx and
   every block int8 (model.int8.onnx). That model.onnx is what every quantizer gets.
2. The peers quantize it on the same 64 calibration images (the export's own: random_images
   with the export's seed + 1):
     ort   ONNX Runtime's quant_pre_process, then quantize_static (QDQ, per-channel s8
           weights, u8 activations, its defaults otherwise: MinMax, full weight range);
     nncf  nncf.quantize on the OpenVINO model read from model.onnx (default preset), saved
           as IR, run in OpenVINO with INFERENCE_PRECISION_HINT f32 (as edgecnn runs it).
3. Per thread count: `edgecnn tune ARTIFACT --threads T` (a subprocess, as a user runs it;
   its wall time recorded), then one interleaved group through edgecnn's harness
   (timing/harness.py run_group): fp32 (ORT), edgecnn tuned (the file and runtime its
   tuning.json records), edgecnn every block int8 (ORT) twice (the A/A pair: the noise),
   ort, nncf, and model.int8.onnx in OpenVINO (a diagnostic: where edgecnn trails NNCF,
   is it the runtime or the graph?). Then each quantized file's logits against fp32's on 4
   other random images (relative L2 error): a fast peer must also compute the model.
Writes peers.{json,md} (--quick: peers-quick.{json,md}, labeled a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's edgecnn, not an installed one

OUT = ROOT / "runs" / "bench-tune" / "peers"
MODELS = {  # label -> `edgecnn export` arguments
    "mobilenet-a0.5": ["mobilenet", "--alpha", "0.5"],
    "mobilenet_v2": ["mobilenet_v2"],
    "mobilenet_v3_small": ["mobilenet_v3_small"],
    "mobilenet_v3_large": ["mobilenet_v3_large"],
    "squeezenet1_1": ["squeezenet1_1"],
    "shufflenet_v2_x1_0": ["shufflenet_v2_x1_0"],
}
CALIB_SAMPLES = 64
FULL = {"iters": 150, "rounds": 15}  # per case: 150 timed calls in 15 rotated rounds
QUICK = {"iters": 30, "rounds": 3}
# case label -> what it is (the table's columns, in order)
CASES = {"fp32": "model.onnx in ONNX Runtime",
         "edgecnn_tuned": "the file and runtime `edgecnn tune` records at these threads "
                          "(tuned = its candidate: int8 = model.int8.onnx, float = "
                          "model.onnx, placement = some blocks back in float, merged = "
                          "model.int8.onnx with sibling convolutions merged, "
                          "edgecnn/export/merge.py)",
         "edgecnn_int8": "model.int8.onnx (every block int8) in ONNX Runtime",
         "edgecnn_int8_again": "the same file again in the same group (A/A: the noise)",
         "edgecnn_int8_ov": "model.int8.onnx in OpenVINO f32 (a diagnostic: is a gap to NNCF "
                            "the runtime or the graph?)",
         "ort": "ONNX Runtime quant_pre_process + quantize_static, in ONNX Runtime",
         "nncf": "NNCF nncf.quantize (OpenVINO backend, default preset), in OpenVINO f32"}
PEERS = ("ort", "nncf")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _edgecnn(args: list[str]) -> tuple[str, float, str]:
    """Run the real command line; (its command, wall s, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgecnn", *args], cwd=ROOT, text=True,
                          capture_output=True, env=_env())
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"edgecnn {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}")
    return "edgecnn " + " ".join(args), wall, proc.stdout


def export(label: str, reuse: bool) -> dict[str, Any]:
    art = OUT / label
    args = ["export", *MODELS[label], "--resolution", "224", "--num-classes", "1000",
            "--int8", "--calib-data", "random", "--calib-samples", str(CALIB_SAMPLES),
            "-o", str(art.relative_to(ROOT)), "--force"]
    stamp = art / "peers-export.json"
    if reuse and stamp.is_file() and json.loads(stamp.read_text())["command"] == \
            "edgecnn " + " ".join(args):
        return json.loads(stamp.read_text()) | {"reused": True}
    command, wall, _ = _edgecnn(args)
    report = json.loads((art / "export.json").read_text())
    done = {"command": command, "wall_s": round(wall, 2),
            "weight_range": report["int8"].get("weight_range"),
            "calibration": report["int8"].get("calibration")}
    stamp.write_text(json.dumps(done, indent=2) + "\n")
    return done


def calibration_images(art: Path) -> Any:
    """The export's own calibration inputs (export/api.py: random_images at seed + 1)."""
    from edgecnn.export.inputs import random_images
    from edgecnn.export.spec import ExportSpec
    from edgecnn.runtime.loader import preprocess_for
    from edgecnn.runtime.onnx_file import read_onnx

    pre = preprocess_for(read_onnx(art / "model.onnx"))
    return random_images(CALIB_SAMPLES, pre, ExportSpec.__dataclass_fields__["seed"].default
                         + 1), pre


def quantize_ort(art: Path, calib: Any) -> dict[str, Any]:
    """What ONNX Runtime's documentation says to do, with its defaults."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, \
        quantize_static

    from edgecnn.export.inputs import CalibrationReader

    start = time.perf_counter()
    pre, out = art / "peer-ort.pre.onnx", art / "peer-ort.int8.onnx"
    quant_pre_process(str(art / "model.onnx"), str(pre))
    quantize_static(str(pre), str(out), CalibrationReader(calib), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return {"file": out.name, "quantize_s": round(time.perf_counter() - start, 2),
            "options": "quant_pre_process; quantize_static(QDQ, per_channel=True, "
                       "activation_type=QUInt8, weight_type=QInt8; MinMax, reduce_range=False: "
                       "the defaults)"}


def quantize_nncf(art: Path, calib: Any) -> dict[str, Any]:
    import nncf
    import openvino as ov

    start = time.perf_counter()
    model = ov.Core().read_model(str(art / "model.onnx"))
    data = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    quantized = nncf.quantize(model, data, subset_size=len(calib))  # default preset
    out = art / "peer-nncf.int8.xml"
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return {"file": out.name, "quantize_s": round(time.perf_counter() - start, 2),
            "options": f"nncf.quantize(ov.Core().read_model(model.onnx), "
                       f"subset_size={len(calib)}; default preset), "
                       "ov.save_model(compress_to_fp16=False)"}


def tune(art: Path, threads: int) -> dict[str, Any]:
    command, wall, out = _edgecnn(["tune", str(art.relative_to(ROOT)), "--threads",
                                   str(threads), "--json"])
    record = json.loads(out)
    merge = (record.get("merge") or {}).get(record["runtime"]) or {}
    merged = f"{len(merge['in_merged_file'])} of {merge['groups']}" if merge else None
    return {"command": command, "wall_s": round(wall, 2), "file": record["file"],
            "runtime": record["runtime"], "candidate": record["candidate"],
            "threads": record["threads"], "inconclusive": record["inconclusive"],
            "noise_band": record["noise_band"], "candidates_ms": record["candidates_ms"],
            "search": {k: record["search"].get(k) for k in ("chosen", "float_blocks",
                                                            "search_s")},
            "merged_groups": merged if record["candidate"] == "merged" else None}


def _ov_ir_runner(onnx_path: Path, xml: Path, threads: int) -> Any:
    """OvRunner on an IR file: NNCF's output is an OpenVINO model, not ONNX. The input spec
    comes from the fp32 ONNX file it was made from; the config is OvRunner's (f32 hint)."""
    from edgecnn.runtime.ov_runner import OvOptions, OvRunner, _error

    class OvIrRunner(OvRunner):
        def activate_impl(self) -> None:
            import openvino as ov

            o = self.options
            config: dict[str, Any] = {"PERFORMANCE_HINT": o.performance_hint,
                                      "INFERENCE_PRECISION_HINT": o.precision,
                                      "INFERENCE_NUM_THREADS": o.threads}
            try:
                core = ov.Core()
                self.compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
                self.request = self.compiled.create_infer_request()
            except Exception as exc:  # noqa: BLE001 - one line, as OvRunner says it
                raise _error(f"load {xml.name}", exc) from None

    return OvIrRunner(onnx_path, "cpu", OvOptions(precision="f32", threads=threads))


def cases(art: Path, tuned: dict[str, Any], threads: int) -> list[Any]:
    from edgecnn.runtime.loader import runner_class
    from edgecnn.timing.harness import BenchCase

    def onnx_case(label: str, file: str, runtime: str) -> BenchCase:
        cls = runner_class(runtime)
        opts = cls.options_type.from_kwargs(runtime, {"threads": threads})
        return BenchCase(label, runtime, "fp32" if file == "model.onnx" else "int8", 1,
                         path=art / file,
                         make_runner=lambda c=cls, p=art / file, o=opts: c(p, "cpu", o))

    nncf = BenchCase("nncf", "openvino", "int8", 1, path=art / "peer-nncf.int8.xml",
                     make_runner=lambda: _ov_ir_runner(art / "model.onnx",
                                                       art / "peer-nncf.int8.xml", threads))
    return [onnx_case("fp32", "model.onnx", "onnxruntime"),
            onnx_case("edgecnn_tuned", tuned["file"], tuned["runtime"]),
            onnx_case("edgecnn_int8", "model.int8.onnx", "onnxruntime"),
            onnx_case("edgecnn_int8_again", "model.int8.onnx", "onnxruntime"),
            onnx_case("edgecnn_int8_ov", "model.int8.onnx", "openvino"),
            onnx_case("ort", "peer-ort.int8.onnx", "onnxruntime"), nncf]


def time_group(group: list[Any], plan: dict[str, int]) -> dict[str, float]:
    from edgecnn.timing.harness import run_group
    from edgecnn.timing.loop import TimingPlan

    records = run_group(group, TimingPlan(iters=plan["iters"]), peak_gmacs=None,
                        rounds=plan["rounds"])
    if len(records) < len(group):
        raise KeyboardInterrupt  # the harness stopped early on Ctrl-C
    return {r.model: round(r.latency_ms_p50, 4) for r in records}


def output_error(group: list[Any], pre: Any) -> dict[str, float]:
    """Relative L2 error of each case's logits against fp32's, on 4 images not calibrated
    on (a quantizer that broke the model would also be fast)."""
    import numpy as np

    from edgecnn.export.inputs import random_images

    x = random_images(4, pre, seed=1234)
    out = {}
    for case in group:
        with case.make_runner() as runner:
            out[case.model] = np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))])
    ref = out["fp32"]
    return {k: round(float(np.linalg.norm(v - ref) / np.linalg.norm(ref)), 4)
            for k, v in out.items() if k != "fp32"}


def aa_noise(ms: dict[str, float], tuned: dict[str, Any]) -> tuple[float, list[list[str]]]:
    """The same file in the same runtime, timed as separate cases of one group: the widest
    (max - min) / min among them is the noise. edgecnn_int8 and its copy always; the tuned
    case joins whichever case is its very file and runtime (fp32 when tune chose float)."""
    same = {("model.int8.onnx", "onnxruntime"): ["edgecnn_int8", "edgecnn_int8_again"],
            ("model.int8.onnx", "openvino"): ["edgecnn_int8_ov"],
            ("model.onnx", "onnxruntime"): ["fp32"]}
    same.setdefault((tuned["file"], tuned["runtime"]), []).append("edgecnn_tuned")
    sets = [names for names in same.values() if len(names) > 1]
    spread = max((max(ms[n] for n in names) - min(ms[n] for n in names))
                 / min(ms[n] for n in names) for names in sets)
    return round(spread, 4), sets


def run_model(label: str, threads: list[int], plan: dict[str, int], reuse: bool
              ) -> dict[str, Any]:
    load_before = os.getloadavg()
    art = OUT / label
    row: dict[str, Any] = {"export": export(label, reuse)}
    calib, pre = calibration_images(art)
    row["peers"] = {"ort": quantize_ort(art, calib), "nncf": quantize_nncf(art, calib)}
    for t in threads:
        tuned = tune(art, t)  # before the group: a re-tune may replace the placement file
        group = cases(art, tuned, t)
        t0 = time.perf_counter()
        ms = time_group(group, plan)
        group_s = time.perf_counter() - t0
        best_peer = min(PEERS, key=lambda p: ms[p])
        noise, pairs = aa_noise(ms, tuned)
        row[f"threads_{t}"] = {
            "tune": tuned, "p50_ms": ms, "best_peer": best_peer, "group_s": round(group_s, 1),
            "ratio_vs_best_peer": round(ms[best_peer] / ms["edgecnn_tuned"], 3),
            # the same runtime, the graphs alone: edgecnn's every-block-int8 file vs NNCF's
            "nncf_over_int8_ov": round(ms["nncf"] / ms["edgecnn_int8_ov"], 3),
            "noise_aa": noise, "noise_cases": pairs,
            "int8_over_fp32": round(ms["fp32"] / ms["edgecnn_int8"], 3),
            "rel_error_vs_fp32": output_error(group, pre)}
        print(f"  {label} {t} thread(s): " + ", ".join(f"{k} {v:.3f}" for k, v in ms.items())
              + f" ms; tuned/best peer {row[f'threads_{t}']['ratio_vs_best_peer']:.2f}x",
              flush=True)
    row["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return row


def summary(models: dict[str, Any], threads: list[int]) -> dict[str, Any]:
    def geomean(xs: list[float]) -> float | None:
        return round(math.exp(sum(map(math.log, xs)) / len(xs)), 3) if xs else None

    rows = [(m, t, r[f"threads_{t}"]) for m, r in models.items() for t in threads
            if f"threads_{t}" in r]
    out: dict[str, Any] = {
        "geomean_ratio_vs_best_peer": geomean([x["ratio_vs_best_peer"] for _, _, x in rows]),
        "geomean_by_threads": {t: geomean([x["ratio_vs_best_peer"] for _, tt, x in rows
                                           if tt == t]) for t in threads},
        "geomean_nncf_over_int8_ov": geomean([x["nncf_over_int8_ov"] for _, _, x in rows]),
        "max_noise_aa": max((x["noise_aa"] for _, _, x in rows), default=None),
        "slower_than_a_peer": [f"{m} @ {t} thread(s): {x['best_peer']} "
                               f"{x['p50_ms'][x['best_peer']]:.3f} ms vs edgecnn tuned "
                               f"{x['p50_ms']['edgecnn_tuned']:.3f} ms ("
                               + ("beyond" if 1 / x["ratio_vs_best_peer"] - 1 > x["noise_aa"]
                                  else "within") + f" the A/A noise {x['noise_aa']:.1%})"
                               for m, t, x in rows if x["ratio_vs_best_peer"] < 1.0]}
    mnv1 = models.get("mobilenet-a0.5", {}).get("threads_1")
    if mnv1:
        out["mobilenet_a0.5_1thread"] = {
            "int8_over_fp32": mnv1["int8_over_fp32"],
            "tuned_over_fp32": round(mnv1["p50_ms"]["fp32"] / mnv1["p50_ms"]["edgecnn_tuned"],
                                     3)}
    mnv1_2 = models.get("mobilenet-a0.5", {}).get("threads_2")
    if mnv1_2:
        out["mobilenet_a0.5_tune_wall_s_2threads"] = mnv1_2["tune"]["wall_s"]
    return out


def conditions(argv: list[str]) -> dict[str, Any]:
    import nncf
    import onnx
    import onnxruntime
    import openvino
    import torch

    from edgecnn.host import cpu_flags, cpu_model

    flags = cpu_flags()
    return {"command": " ".join([Path(sys.executable).as_posix(), "benchmarks/tune/peers.py",
                                 *argv]),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "cpu": cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
            "simd": [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
                     if f in flags],
            "vnni": bool(flags & {"avx512_vnni", "avx_vnni"}), "flags": " ".join(sorted(flags)),
            "python": platform.python_version(),
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                         "onnxruntime": onnxruntime.__version__,
                         "openvino": openvino.__version__.split("-")[0],
                         "nncf": nncf.__version__}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK['iters']} calls per case (not {FULL['iters']}): a smoke run, "
                    "written to peers-quick.{json,md}")
    ap.add_argument("--reuse-exports", action="store_true",
                    help="keep an export this script already made with the same command")
    args = ap.parse_args(argv)
    labels = args.models.split(",")
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; one of {', '.join(MODELS)}")
    threads = sorted({int(t) for t in args.threads.split(",")})
    plan = QUICK if args.quick else FULL
    stem = "peers-quick" if args.quick else "peers"
    start = time.perf_counter()
    results: dict[str, Any] = {"conditions": conditions(argv), "plan": plan, "cases": CASES,
                               "quick": args.quick, "models": {}}
    results["load_average_before"] = os.getloadavg()
    for label in labels:
        print(f"{label}", flush=True)
        results["models"][label] = run_model(label, threads, plan, args.reuse_exports)
    results["load_average_after"] = os.getloadavg()
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["summary"] = summary(results["models"], threads)
    (HERE / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / f"{stem}.md").write_text(markdown(results, threads))
    print(f"wrote benchmarks/tune/{stem}.json and {stem}.md in {results['wall_s']:.0f} s")
    return 0


def markdown(r: dict[str, Any], threads: list[int]) -> str:
    c, s, plan = r["conditions"], r["summary"], r["plan"]
    short = {"fp32": "fp32 ORT", "edgecnn_tuned": "edgecnn tuned", "edgecnn_int8":
             "edgecnn int8 ORT", "edgecnn_int8_again": "same again (A/A)",
             "edgecnn_int8_ov": "edgecnn int8 OV f32",
             "ort": "ORT quantize_static", "nncf": "NNCF in OV f32"}
    lines = []
    if r["quick"]:
        lines += ["# QUICK SMOKE RUN, under load: not the figures", "",
                  f"`--quick`: {plan['iters']} calls per case in {plan['rounds']} rounds, on "
                  "a machine shared with other jobs (load average below). It proves the "
                  "script runs end to end; the figures are peers.md, from the full run on a "
                  "quiet machine.", ""]
    else:
        lines += ["# edgecnn's tuned int8 beside ONNX Runtime's and NNCF's quantizers", ""]
    lines += [
        f"Measured {c['date_utc']} UTC by `{c['command']}` in {r['wall_s']:.0f} s on "
        f"{c['cpu']} ({c['cores']} cores, {c['arch']}; {', '.join(c['simd'])}; "
        f"VNNI: {'yes' if c['vnni'] else 'no'}), Python {c['python']}, "
        + ", ".join(f"{k} {v}" for k, v in c["versions"].items()) + ". "
        f"1-minute load average {r['load_average_before'][0]:.2f} before, "
        f"{r['load_average_after'][0]:.2f} after (per model below).", "",
        "Each model: `edgecnn export` at 224 px, batch 1, 1000 classes, initialized weights "
        "with BN statistics from a batch, int8 calibrated on 64 random-normal images; the "
        "same model.onnx and the same 64 images go to every quantizer. Per thread count, "
        f"`edgecnn tune --threads T` first, then the {len(r['cases'])} cases below in one group "
        "through "
        f"edgecnn's harness (timing/harness.py): {plan['iters']} timed calls each, in "
        f"{plan['rounds']} rounds of blocks that rotate their order, a settle pause before "
        "each block. p50 ms. **ratio** = the better peer's p50 / edgecnn tuned's "
        "(>= 1.00: edgecnn at least as fast). **A/A** = the same file in the same runtime timed "
        "as separate cases of the group (model.int8.onnx in ONNX Runtime twice; the tuned "
        "case with whichever case is its very file and runtime), the widest (max - min)"
        " / min: differences smaller than it are noise.", "",
        "| model | threads | " + " | ".join(short[k] for k in r["cases"]) +
        " | tuned = | ratio | A/A | NNCF / int8 OV | tune s | load 1-min |",
        "|---|---|" + "---:|" * len(r["cases"]) + "---|---:|---:|---:|---:|---|"]
    for name, row in r["models"].items():
        for t in threads:
            x = row.get(f"threads_{t}")
            if not x:
                continue
            tn = x["tune"]
            ms = " | ".join(f"{x['p50_ms'][k]:.3f}" for k in r["cases"])
            la = row["load_average"]
            lines.append(f"| {name} | {t} | {ms} | {tn['candidate']} {tn['runtime']} | "
                         f"**{x['ratio_vs_best_peer']:.2f}** | {x['noise_aa']:.1%} | "
                         f"{x['nncf_over_int8_ov']:.2f} | "
                         f"{tn['wall_s']:.1f} | {la['before'][0]:.1f}-{la['after'][0]:.1f} |")
    gm = s["geomean_by_threads"]
    lines += ["", f"Geometric mean of the ratio: **{s['geomean_ratio_vs_best_peer']}** ("
              + ", ".join(f"{t} thread(s) {v}" for t, v in gm.items()) + "); widest A/A "
              f"{s['max_noise_aa']:.1%}. **NNCF / int8 OV** = NNCF's p50 / edgecnn's "
              "model.int8.onnx in OpenVINO f32 (the same runtime: the graphs alone; >= 1.00: "
              "edgecnn's graph at least as fast), geometric mean "
              f"{s['geomean_nncf_over_int8_ov']}.", ""]
    m = s.get("mobilenet_a0.5_1thread")
    if m:
        lines.append(f"- MobileNet v1 alpha 0.5, 1 thread: edgecnn int8 (ORT) over fp32 "
                     f"(ORT) {m['int8_over_fp32']:.2f}x; edgecnn tuned over fp32 "
                     f"{m['tuned_over_fp32']:.2f}x.")
    if "mobilenet_a0.5_tune_wall_s_2threads" in s:
        lines.append(f"- `edgecnn tune` on MobileNet v1 alpha 0.5 at 224 px, "
                     f"{max(threads)} threads: {s['mobilenet_a0.5_tune_wall_s_2threads']:.1f} "
                     "s wall (the command, start-up included; goal <= 20 s on 2 cores).")
    if s["slower_than_a_peer"]:
        lines += ["- edgecnn tuned is slower than the better peer here:"] + [
            f"  - {w}" for w in s["slower_than_a_peer"]]
    else:
        lines.append("- edgecnn tuned is nowhere slower than the better peer.")
    lines += ["", "## Output check", "",
              "Relative L2 error of each quantized file's logits against fp32's, on 4 "
              "random images not calibrated on (untrained models: a sanity check that "
              "every quantizer computes the model, not an accuracy figure).", "",
              "| model | threads | " + " | ".join(short[k] for k in r["cases"]
                                                  if k != "fp32") + " |",
              "|---|---|" + "---:|" * (len(r["cases"]) - 1)]
    for name, row in r["models"].items():
        for t in threads:
            x = row.get(f"threads_{t}")
            if x:
                lines.append(f"| {name} | {t} | " + " | ".join(
                    f"{x['rel_error_vs_fp32'][k]:.4f}" for k in r["cases"] if k != "fp32")
                    + " |")
    lines += ["", "## What each case is", ""] + [f"- **{short[k]}**: {v}" for k, v in
                                                  r["cases"].items()]
    any_row = next(iter(r["models"].values()), None)
    if any_row:
        lines += [f"- ORT: {any_row['peers']['ort']['options']}",
                  f"- NNCF: {any_row['peers']['nncf']['options']}",
                  f"- edgecnn's weight range on this machine: "
                  f"{any_row['export']['weight_range']}"]
    lines += ["", "## Commands and quantize times", "", "| model | export s | ORT quantize s "
              "| NNCF quantize s | tune s per thread count |", "|---|---:|---:|---:|---|"]
    for name, row in r["models"].items():
        tunes = ", ".join(f"{t}: {row[f'threads_{t}']['tune']['wall_s']:.1f}" for t in threads
                          if f"threads_{t}" in row)
        lines.append(f"| {name} | {row['export']['wall_s']} | "
                     f"{row['peers']['ort']['quantize_s']} | {row['peers']['nncf']['quantize_s']}"
                     f" | {tunes} |")
    lines += [""] + [f"- `{row['export']['command']}`" for row in r["models"].values()]
    lines += ["- then `edgecnn tune runs/bench-tune/peers/MODEL --threads T --json` per thread "
              "count", "", "Reproduce: see the docstring of benchmarks/tune/peers.py (NNCF in "
              "a venv of its own: `python3.11 -m venv /work/bench-venv`, a .pth line "
              "pointing at the project venv's site-packages, `pip install nncf==3.4.0`).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
