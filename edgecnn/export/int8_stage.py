"""The int8 stage of an export: candidates, the accuracy guard, the one decision, the file.

`_Export` (export/api.py) inherits it: these methods read the export's state (spec, target,
source, data, report) and write export.json's int8 section. Reading order: `int8` makes the
candidates and calls `decision.choose`; `int8_section` records what was decided and on what;
`int8_file` is the chosen graph with its metadata.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.export.spec import ExportSpec
from edgecnn.export.targets import Target


class Int8Stage:
    """Mixin of `_Export`: what it reads from the export, typed here for the reader."""

    spec: ExportSpec
    target: Target
    src: Any  # export/source.py: the model's source (resolution, channels, mean/std, ...)
    pre: Any  # the preprocessing of the data
    calib: Any  # calibration images (None: random calibration)
    held_out: Any  # held-out images for the guard (None: not measured)
    criterion: str  # "top1" or "agreement"
    report: dict[str, Any]
    log: Callable[[str], None]
    int8_calibration: str
    # and its methods warn(line), props(precision, extra) and fp32_proto(model)

    def int8(self, model: torch.nn.Module, fp32: onnx.ModelProto) -> onnx.ModelProto | None:
        """The int8 graph to write, or None when the decision is that there is none (see
        export/decision.py): candidates made by the per-block search and the accuracy guard,
        the accuracy guard's pick timed against fp32, then `choose`."""
        import tempfile

        from edgecnn.export import mixed
        from edgecnn.export.decision import Candidate, Policy, accuracy_pick, choose, timed_on
        from edgecnn.export.guard import GuardConfig, calib_caches, run_guard
        from edgecnn.export.inputs import CalibrationReader, random_images
        from edgecnn.export.quantize import preprocess, quantize
        from edgecnn.host import cpu_model, vnni_host

        scheme, opts = self.target.int8, self.spec.int8
        method = opts.calib_method or scheme.calib_method
        random = self.calib is None
        if scheme.weight_range == "reduced" and vnni_host():
            self.log(f"{self.target.name} keeps int8 weights to 7 bits, for x86 CPUs without "
                     "VNNI; this one has VNNI: for devices that have it too, --target "
                     "cpu-x86-vnni keeps 8 bits")
        # images are normalized batch by batch as calibration reads them (LabeledImages)
        calib_x = random_images(opts.calib_samples, self.pre, self.spec.seed + 1) \
            if random else self.calib
        blocks, why_blocks = self.int8_blocks()
        cpu = not scheme.symmetric_activations  # TensorRT's int8 is timed on its device
        shape = (1, self.src.in_chans, self.src.resolution, self.src.resolution)
        # measured at the thread count a device app runs with (every core), not at 1
        mixed_config = mixed.MixedConfig(threads=os.cpu_count() or 1)
        timer = opts.timer or mixed.MeasuredTimer(shape, mixed_config)
        pre = preprocess(fp32)
        qat = (lambda: self.qat_model(model)) if opts.qat_epochs else None
        config = GuardConfig(method=method, max_drop=opts.max_drop, criterion=self.criterion,
                             min_agreement=opts.min_agreement)
        guard = search = None
        with tempfile.TemporaryDirectory() as cache_dir:
            if blocks == "auto":  # blocks slower in int8 on this machine: float
                self.log(f"--int8-blocks auto: int8 placement measured on this machine "
                         f"({cpu_model()}, {os.cpu_count()} threads); the artifact records it")
                reader, cache = CalibrationReader(calib_x), calib_caches(Path(cache_dir))[method]
                search = mixed.search_blocks(
                    pre, lambda exclude: quantize(pre, reader, scheme, method=method,
                                                  exclude=exclude, cache=cache),
                    timer, mixed_config, reference=fp32, log=self.log)
            if search is not None and search.record["chosen"] == "float":
                candidates = [Candidate("float", None, tuple(search.float_nodes), note=(
                    "no block ran faster in int8 than in fp32 in the search's profile "
                    f"(ONNX Runtime, {search.record['threads']} thread(s))"))]
            else:
                guard = run_guard(pre, calib_x, self.held_out, scheme, config,
                                  cache_dir=Path(cache_dir),
                                  keep_float=search.float_nodes if search else (),
                                  first=search.proto if search else None, qat=qat, log=self.log)
                candidates = list(guard.candidates)
        policy = Policy(blocks=blocks, criterion=self.criterion, max_drop=opts.max_drop,
                        min_agreement=opts.min_agreement, untimed="" if cpu else
                        "TensorRT target: int8 is timed at engine build, on the device",
                        timed_on=timed_on(self.target.name, mixed_config.threads)
                        if cpu else None)
        pick, _ = accuracy_pick(candidates, policy)
        if cpu and pick.is_int8:  # the final graph against fp32, in every CPU runtime
            i = next(i for i, c in enumerate(candidates) if c is pick)
            pick = candidates[i] = replace(pick, latency=timer.time(fp32, pick.proto))
        decision = choose(candidates, policy)
        self.report["int8"] = self.int8_section(decision, guard, search, why_blocks, pick,
                                                calib_x, random)
        if not decision.written:
            self.warn(decision.line())
            return None
        self.log(decision.line())
        self.int8_warnings(decision, len(candidates), random)
        return self.int8_file(decision)

    def int8_blocks(self) -> tuple[str, str]:
        """("all" | "auto", why). Without --int8-blocks, the target's scheme: every block
        int8, float only where the accuracy guard says (what depends on the hardware is
        measured where the model runs, so this machine's speed does not shape the file)."""
        spec = self.spec.int8
        if spec.blocks is not None:
            return spec.blocks, f"--int8-blocks {spec.blocks}"
        return "all", "the target's scheme: every block int8 (--int8-blocks auto searches)"

    def int8_section(self, decision: Any, guard: Any, search: Any, why_blocks: str,
                     timed: Any, calib_x: Any, random: bool) -> dict[str, Any]:
        """export.json's int8 section: what was decided and everything it was decided on."""
        from edgecnn.export.quantize import weight_range

        scheme, opts = self.target.int8, self.spec.int8
        chosen = decision.chosen
        reduced, range_reason = weight_range(scheme)
        self.int8_calibration = ("random inputs (latency only: accuracy not measured)"
                                 if random else f"{opts.calib_data} ({len(calib_x)} train images)")
        section: dict[str, Any] = {
            "written": decision.written, "reason": decision.reason,
            "activations": scheme.activations, "weights": scheme.weights,
            "weight_range": range_reason, "weight_range_reduced": reduced,
            "calibration": self.int8_calibration, "random_calibration": random,
            "criterion": self.criterion, "max_drop": opts.max_drop,
            "min_agreement": opts.min_agreement,
            "blocks": search.record if search is not None else {"reason": why_blocks},
            "guard": guard.to_dict(next((i for i, c in enumerate(decision.candidates)
                                         if c is chosen), None)) if guard is not None else None,
            "candidates": [{"name": c.name, "method": c.method, "float_layers":
                            len(c.float_layers), "passed": c.accuracy.passed,
                            "latency": c.latency.to_dict() if c.latency else None}
                           for c in decision.candidates],
            "float_layers": list(chosen.float_layers) if chosen is not None else [],
            "final": None, "verdict": decision.verdict(),
            "latency": timed.latency.to_dict() if timed.latency is not None else None}
        if chosen is not None:  # the figures of the file written
            section["final"] = {
                "top1_fp32": guard.top1_fp32 if guard is not None else None,
                "top1_int8": chosen.accuracy.top1, "agreement": chosen.accuracy.agreement,
                "drop": chosen.accuracy.drop}
        return section

    def int8_warnings(self, decision: Any, steps: int, random: bool) -> None:
        opts, chosen = self.spec.int8, decision.chosen
        slow = decision.slower
        if slow:
            each = ", ".join(f"{k} ({chosen.latency.speedups[k]:.2f}x)" for k in slow)
            self.warn(f"int8 slower than fp32 in {each}: deploy model.onnx there")
        if decision.accurate is False and self.criterion == "agreement":
            self.warn(f"int8 agrees with fp32 on {chosen.accuracy.agreement:.2f}% of the "
                      f"held-out images (< {opts.min_agreement:g}%) after {steps} guard steps; "
                      "kept the closest")
        elif decision.accurate is False:
            self.warn(f"int8 loses {chosen.accuracy.drop:.2f} top-1 points (> --max-drop "
                      f"{opts.max_drop:g}) after {steps} guard steps; kept the most accurate")
        if random:
            self.warn("int8 calibrated on random inputs: for latency work only, accuracy "
                      "not measured")

    def int8_file(self, decision: Any) -> onnx.ModelProto:
        """The chosen candidate with our metadata, checked for TensorRT where it is bound."""
        from edgecnn.export.onnx_io import finish
        from edgecnn.export.quantize import tensorrt_problems

        chosen, section = decision.chosen, self.report["int8"]
        extra = {"calibration": self.int8_calibration, "calib_method": chosen.method,
                 "float_layers": str(len(chosen.float_layers)),
                 "weight_range": "reduced" if section["weight_range_reduced"] else "full",
                 "qat": "true" if chosen.name == "qat" else "false"}
        proto = finish(chosen.proto, self.props("int8", extra),
                       max_ir_version=self.target.max_ir_version)
        section["layers"] = layer_precisions(proto, section)
        if self.target.int8.tensorrt_checks:
            problems = tensorrt_problems(proto, allow_float=list(chosen.float_layers))
            section["tensorrt_checks"] = {"passed": not problems, "problems": problems}
            if problems:
                raise EdgeCNNError(f"the int8 graph would not run as int8 in TensorRT: "
                                   f"{problems[0]} ({len(problems)} problems)")
        return proto

    def qat_model(self, model: torch.nn.Module) -> onnx.ModelProto:
        from edgecnn.export.qat import qat_finetune
        from edgecnn.export.quantize import preprocess

        trained = qat_finetune(copy.deepcopy(model), self.target.int8,
                               data=self.spec.int8.calib_data,
                               epochs=self.spec.int8.qat_epochs, resolution=self.src.resolution,
                               mean=self.src.mean, std=self.src.std, seed=self.spec.seed)
        return preprocess(self.fp32_proto(trained))


def layer_precisions(proto: onnx.ModelProto, section: dict[str, Any]) -> list[dict[str, str]]:
    """Each Conv/Gemm/MatMul of the int8 file: int8 when it reads a dequantized weight, else
    float, and why (`edgecnn info ARTIFACT` shows it)."""
    from edgecnn.export.mixed import block_of
    from edgecnn.export.placement import QDQ

    dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    guard = section.get("guard") or {}
    steps = guard.get("steps") or []
    chosen = steps[guard["chosen"]] if guard.get("chosen") is not None else {}
    search = {b for b in (section.get("blocks") or {}).get("float_blocks", [])}
    out = []
    for n in proto.graph.node:
        if n.op_type in QDQ or n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        if len(n.input) > 1 and n.input[1] in dq:
            out.append({"layer": n.name, "op": n.op_type, "precision": "int8", "why": ""})
            continue
        why = ("faster in float on the exporting machine (--int8-blocks auto)"
               if block_of(n.name) in search else
               f"the accuracy guard ({chosen.get('step', 'guard')}) kept it float"
               if n.name in (chosen.get("float_layers") or []) else "not quantized")
        out.append({"layer": n.name, "op": n.op_type, "precision": "float", "why": why})
    return out
