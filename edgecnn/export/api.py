"""`export(ExportOptions(...))`: a zoo model or a checkpoint to an artifact directory.

Reading order of one export:
  1. check every option against the target (one-line errors before any work or any file)
  2. the model: zoo name (initialized weights) or checkpoint (rebuilt from it alone)
  3. data: calibration images (train split), held-out images (val split)
  4. pruning (structured or unstructured) and fine-tuning
  5. fp32 ONNX: export, onnxslim, BN folded, metadata, checker, parity in ORT and OpenVINO
  6. int8 (accuracy guard) or fp16
  7. export.json, then the directory is renamed into place
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.export.targets import CALIB_METHODS, DEFAULT_TARGET, Target, load_target

FORMAT = "edgecnn-export/1"
INT8_MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (the axis attribute)


@dataclass(frozen=True)
class ExportOptions:
    """One export; the CLI flags map one to one (`prune_scope` and `seed` are API-only)."""

    source: str  # zoo model name or checkpoint path
    alpha: float | None = None  # None: 1.0, or the checkpoint's
    resolution: int | None = None  # None: the model's default, or the checkpoint's
    num_classes: int | None = None
    target: str = DEFAULT_TARGET  # recipe name or path
    prune: float | None = None  # share of MACs (structured) or weights (unstructured) removed
    prune_method: str = "structured"
    prune_scope: str = "uniform"  # structured: uniform per layer, or global ranking
    finetune_epochs: int = 0  # after pruning, on the checkpoint's data set
    int8: bool = False
    calib_data: str | None = None  # data set spec, or "random" (latency-only int8)
    calib_samples: int = 256
    calib_method: str | None = None  # None: the target's
    max_drop: float = 1.0  # top-1 points int8 may lose
    qat_epochs: int = 0  # quantization-aware training as the guard's last step
    fp16: bool = False
    opset: int | None = None  # None: the target's
    dynamic_batch: bool = False
    output: str | None = None  # None: exports/<model>-a<alpha>-r<resolution>
    force: bool = False
    seed: int = 0


@dataclass
class ExportResult:
    path: Path
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def check_options(opts: ExportOptions) -> Target:
    """Everything that can be judged without loading the model; returns the target."""
    target = load_target(opts.target)
    if opts.int8 and opts.fp16:
        raise EdgeCNNError("--int8 and --fp16 are exclusive: export one precision at a time")
    if opts.prune is not None:
        from edgecnn.export.prune import PruneConfig

        PruneConfig(opts.prune, opts.prune_method, opts.prune_scope)  # validates
    elif opts.finetune_epochs:
        raise EdgeCNNError("--finetune-epochs needs --prune (fine-tuning recovers pruning)")
    for name, value in (("finetune epochs", opts.finetune_epochs),
                        ("QAT epochs", opts.qat_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise EdgeCNNError(f"{name} must be a non-negative integer, got {value!r}")
    if not (isinstance(opts.max_drop, (int, float)) and math.isfinite(opts.max_drop)
            and opts.max_drop >= 0):
        raise EdgeCNNError(f"max drop must be >= 0 points, got {opts.max_drop!r}")
    if isinstance(opts.calib_samples, bool) or not isinstance(opts.calib_samples, int) \
            or opts.calib_samples < 1:
        raise EdgeCNNError(f"calibration samples must be a positive integer, "
                           f"got {opts.calib_samples!r}")
    if opts.calib_method is not None and opts.calib_method not in CALIB_METHODS:
        raise EdgeCNNError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, "
                           f"got {opts.calib_method!r}")
    opset = target.opset if opts.opset is None else opts.opset
    target.check_opset(opset)
    if opts.int8:
        target.check_precision("int8")
        if opset < INT8_MIN_OPSET:
            raise EdgeCNNError(f"int8 needs opset >= {INT8_MIN_OPSET} (per-channel Q/DQ), "
                               f"got {opset}")
        if not opts.calib_data:
            raise EdgeCNNError("--int8 needs --calib-data DATA (real images to calibrate on), "
                               "or --calib-data random for latency-only work")
    elif opts.qat_epochs:
        raise EdgeCNNError("--qat-epochs applies to --int8 only")
    if opts.fp16:
        target.check_precision("fp16")
    if opts.qat_epochs and opts.calib_data == "random":
        raise EdgeCNNError("--qat-epochs needs real data, not --calib-data random")
    return target


def export(opts: ExportOptions, *, log: Callable[[str], None] = lambda line: None
           ) -> ExportResult:
    """Run one export (see the module doc); raises EdgeCNNError on bad input."""
    from edgecnn.export.artifact import ArtifactDir
    from edgecnn.export.source import resolve_source

    started = time.perf_counter()
    target = check_options(opts)
    opset = target.opset if opts.opset is None else opts.opset
    src = resolve_source(opts.source, alpha=opts.alpha, resolution=opts.resolution,
                         num_classes=opts.num_classes, seed=opts.seed)
    needs_data = opts.finetune_epochs or opts.qat_epochs
    if needs_data and not src.trained:
        raise EdgeCNNError("--finetune-epochs and --qat-epochs need a checkpoint: the model is "
                           "fine-tuned on the data set it was trained on")
    out = Path(opts.output) if opts.output else \
        Path("exports") / f"{src.name}-a{src.alpha:g}-r{src.resolution}"
    # The destination is checked and its temporary sibling made before any work or warning:
    # a refusal (exists, read-only) comes first and alone, and nothing is lost to a late one.
    with ArtifactDir(out, force=opts.force) as artifact:
        run = _Export(opts, target, opset, src, log)
        run.build(artifact)
        run.report["timings_s"]["total"] = round(time.perf_counter() - started, 2)
        artifact.write_json("export.json", run.report)
        path = artifact.commit()
    return ExportResult(path, run.report, run.warnings)


class _Export:
    """The steps of one export, sharing the model, data and report as they go."""

    def __init__(self, opts: ExportOptions, target: Target, opset: int, src: Any,
                 log: Callable[[str], None]) -> None:
        from edgecnn.export.inputs import Preprocess

        self.opts, self.target, self.opset, self.src, self.log = opts, target, opset, src, log
        from edgecnn.metadata import policy_for_dataset  # the training data's choice

        self.pre = Preprocess(src.resolution, src.mean, src.std,
                              policy=policy_for_dataset(src.dataset))
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self.report: dict[str, Any] = {
            "format": FORMAT, "edgecnn_version": _version(), "options": asdict(opts),
            "model": src.name, "alpha": src.alpha, "resolution": src.resolution,
            "in_chans": src.in_chans, "num_classes": len(src.classes), "trained": src.trained,
            "checkpoint": src.checkpoint or None,
            "checkpoint_sha256": src.checkpoint_sha256 or None,
            "target": {"name": target.name, "source": target.source,
                       "max_ir_version": target.max_ir_version,
                       "int8_scheme": asdict(target.int8)},
            "opset": opset, "dynamic_batch": opts.dynamic_batch, "warnings": self.warnings,
            "timings_s": self.timings,
        }
        if not src.trained:
            self.warn("exporting initialized weights (no checkpoint): the artifact is marked "
                      "untrained, for latency work only")

    def warn(self, line: str) -> None:
        self.warnings.append(line)
        self.log(f"warning: {line}")

    def timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 2)

    # ----------------------------------------------------------------------------------------
    def build(self, artifact: Any) -> None:
        from edgecnn.export.parity import require_parity

        t = time.perf_counter()
        self.load_data()
        self.timed("data", t)
        model = self.src.model
        unpruned = None
        if self.opts.prune is not None:
            t = time.perf_counter()
            unpruned = self.fp32_proto(model)
            model = self.prune(model)
            self.timed("prune", t)
        t = time.perf_counter()
        fp32 = self.fp32_proto(model)
        parity = self.parity(model, fp32)
        self.report["parity"] = [asdict(p) | {"ok": p.ok} for p in parity]
        require_parity(parity)
        self.timed("fp32", t)
        self.report["ir_version"] = fp32.ir_version
        self.report["params"], self.report["macs"] = self.counts(model)
        if unpruned is not None and self.opts.prune_method == "structured":
            self.latency(unpruned, fp32)
        files = {"model.onnx": (fp32, "fp32")}
        if self.opts.int8:
            t = time.perf_counter()
            files["model.int8.onnx"] = (self.int8(model, fp32), "int8")
            self.timed("int8", t)
        if self.opts.fp16:
            t = time.perf_counter()
            files["model.fp16.onnx"] = (self.fp16(fp32), "fp16")
            self.timed("fp16", t)
        self.report["files"] = {}
        from edgecnn.export.artifact import file_sizes

        for name, (proto, precision) in files.items():
            path = artifact.write_onnx(name, proto)
            self.report["files"][name] = {"precision": precision, **file_sizes(path)}

    # ----------------------------------------------------------------------------------------
    def load_data(self) -> None:
        from edgecnn.export.inputs import RANDOM, load_images

        self.calib = self.held_out = self.real = None
        data = self.opts.calib_data
        n = len(self.src.classes)
        if data and data != RANDOM:
            self.calib = load_images(data, "train", self.pre, limit=self.opts.calib_samples,
                                     num_classes=n, seed=self.opts.seed)
            self.held_out = load_images(data, "val", self.pre, num_classes=n)
            self.real = self.held_out.array(8)
            self.real_name = data
        elif self.src.dataset:  # parity on real images from the checkpoint's data set
            try:
                self.real = load_images(self.src.dataset, "val", self.pre, limit=8,
                                        num_classes=n).array()
                self.real_name = self.src.dataset
            except EdgeCNNError as exc:
                self.warn(f"parity on real images skipped: {exc}")
        self.report["data"] = {
            "calibration": data, "calibration_images": 0 if self.calib is None
            else len(self.calib), "held_out_images": 0 if self.held_out is None
            else len(self.held_out)}

    def prune(self, model: torch.nn.Module) -> torch.nn.Module:
        from edgecnn.export.prune import PruneConfig, make_permanent, prune

        config = PruneConfig(self.opts.prune, self.opts.prune_method, self.opts.prune_scope,
                             finetune_epochs=self.opts.finetune_epochs)
        model = copy.deepcopy(model)  # the source model stays the unpruned reference
        acc_before = self.torch_accuracy(model)
        report = prune(model, config, resolution=self.src.resolution,
                       in_chans=self.src.in_chans)
        self.log(f"pruned ({config.method}): MACs {report.macs_before:,} -> "
                 f"{report.macs_after:,}, params {report.params_before:,} -> "
                 f"{report.params_after:,}, sparsity {report.sparsity:.1%}")
        acc_pruned = self.torch_accuracy(model)
        if config.finetune_epochs:
            from edgecnn.train import finetune

            self.log(f"fine-tuning {config.finetune_epochs} epochs on {self.src.dataset}")
            finetune(model, self.src.dataset, epochs=config.finetune_epochs,
                     resolution=self.src.resolution, mean=self.src.mean, std=self.src.std,
                     seed=self.opts.seed)
        make_permanent(model)
        out = asdict(report)
        out.update(finetune_epochs=config.finetune_epochs, top1_before=acc_before,
                   top1_pruned=acc_pruned,
                   top1_after=self.torch_accuracy(model) if config.finetune_epochs
                   else acc_pruned, accuracy_data=self.src.dataset or None)
        self.report["pruning"] = out
        return model.eval()

    def torch_accuracy(self, model: torch.nn.Module) -> float | None:
        """Held-out top-1 (percent) on the checkpoint's data set; None when untrained."""
        if not self.src.trained or not self.src.dataset:
            return None
        from edgecnn.train import evaluate_accuracy

        result = evaluate_accuracy(model, self.src.dataset, resolution=self.src.resolution,
                                   mean=self.src.mean, std=self.src.std)
        return round(result["top1"] * 100, 3)

    def fp32_proto(self, model: torch.nn.Module) -> onnx.ModelProto:
        from edgecnn.export.onnx_io import check_bn_folded, finish, simplify, to_onnx_proto

        sample = torch.zeros(1, self.src.in_chans, self.src.resolution, self.src.resolution)
        proto = to_onnx_proto(model, sample, opset=self.opset,
                              dynamic_batch=self.opts.dynamic_batch,
                              max_ir_version=self.target.max_ir_version)
        proto = simplify(proto)
        check_bn_folded(proto)
        return finish(proto, self.props("fp32"), max_ir_version=self.target.max_ir_version)

    def parity(self, model: torch.nn.Module, proto: onnx.ModelProto) -> list:
        from edgecnn.export.inputs import random_images
        from edgecnn.export.parity import check_parity, parity_runners

        consumers = parity_runners(proto)  # made once, used twice
        results = [check_parity(model, proto, random_images(4, self.pre, self.opts.seed),
                                "random", consumers)]
        if self.real is not None:
            results.append(check_parity(model, proto, self.real, self.real_name, consumers))
        return results

    def counts(self, model: torch.nn.Module) -> tuple[dict, dict]:
        from edgecnn.export.prune import count_macs

        x = torch.zeros(1, self.src.in_chans, self.src.resolution, self.src.resolution)
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, x)
        pr = self.report.get("pruning")
        if pr:
            return ({"before": pr["params_before"], "after": params},
                    {"before": pr["macs_before"], "after": macs})
        return {"before": params, "after": params}, {"before": macs, "after": macs}

    def latency(self, unpruned: onnx.ModelProto, pruned: onnx.ModelProto) -> None:
        from edgecnn.export.parity import compare_latency

        ms = compare_latency({"unpruned": unpruned, "pruned": pruned}, self.src.resolution,
                             self.src.in_chans)
        speedup = ms["unpruned"] / ms["pruned"]
        self.report["latency_ms"] = {**{k: round(v, 4) for k, v in ms.items()},
                                     "speedup": round(speedup, 3), "runtime": "onnxruntime",
                                     "batch": 1, "threads": 1}
        self.log(f"ONNX Runtime latency: {ms['unpruned']:.3f} ms -> {ms['pruned']:.3f} ms "
                 f"({speedup:.2f}x)")
        if speedup < 1.05:
            self.warn(f"the pruned model is not faster in ONNX Runtime ({ms['unpruned']:.3f} ms "
                      f"-> {ms['pruned']:.3f} ms); structured pruning is meant to buy speed")

    # ----------------------------------------------------------------------------------------
    def int8(self, model: torch.nn.Module, fp32: onnx.ModelProto) -> onnx.ModelProto:
        import tempfile

        from edgecnn.export import mixed
        from edgecnn.export.guard import GuardConfig, calib_caches, run_guard
        from edgecnn.export.inputs import CalibrationReader, random_images
        from edgecnn.export.onnx_io import finish
        from edgecnn.export.quantize import preprocess, quantize, tensorrt_problems, weight_range

        scheme = self.target.int8
        method = self.opts.calib_method or scheme.calib_method
        random = self.calib is None
        calib_x = random_images(self.opts.calib_samples, self.pre, self.opts.seed + 1) \
            if random else self.calib.array()
        pre = preprocess(fp32)
        qat = None
        if self.opts.qat_epochs:
            qat = lambda: self.qat_model(model)  # noqa: E731
        config = GuardConfig(method=method, max_drop=self.opts.max_drop)
        shape = (1, self.src.in_chans, self.src.resolution, self.src.resolution)
        cpu = not scheme.symmetric_activations  # TensorRT's int8 is timed on its device
        with tempfile.TemporaryDirectory() as cache_dir:
            keep: list[str] = []
            first = None
            search = None
            if cpu and scheme.mixed_precision:  # the blocks where int8 is slower stay float
                reader, cache = CalibrationReader(calib_x), calib_caches(Path(cache_dir))[method]
                search = mixed.search_blocks(
                    pre, lambda exclude: quantize(pre, reader, scheme, method=method,
                                                  exclude=exclude, cache=cache),
                    shape, log=self.log)
                keep, first = search.float_nodes, search.proto
            guard = run_guard(pre, calib_x, self.held_out, scheme, config,
                              cache_dir=Path(cache_dir), keep_float=keep, first=first, qat=qat,
                              log=self.log)
        chosen = guard.steps[guard.chosen]
        float_layers = chosen.float_layers  # the float blocks' nodes included
        blocks: dict[str, Any] = {"reason": "the recipe's int8.mixed_precision is false" if cpu
                                  else "TensorRT target: timed on the device"}
        if search is not None:
            blocks = search.record
            if keep and not set(keep) <= set(float_layers):  # the guard took them back
                blocks["float_blocks_dropped"] = "faster in float, less accurate: int8"
        kept, timing, fallback = guard.proto, None, None
        if cpu:  # the final graph against fp32, in every installed CPU runtime
            timing = mixed.verify(fp32, guard.proto, shape)  # against the fp32 file written
            fallback = mixed.slower_somewhere(timing) if search is not None else None
            if fallback:  # int8 must never be slower: every block float, the fp32 graph
                # as exported (quant_pre_process's inlined hard-swish runs slower in OpenVINO)
                kept = onnx.ModelProto()
                kept.CopyFrom(fp32)  # finish() sets metadata in place: model.onnx keeps its own
                float_layers = [n.name for n in fp32.graph.node if n.name]
                blocks["fallback"] = fallback
                self.warn(f"int8 {fallback}")
        calibration = ("random inputs (latency only: accuracy not measured)" if random else
                       f"{self.opts.calib_data} ({len(calib_x)} train images)")
        reduced, range_reason = weight_range(scheme)
        extra = {"calibration": calibration, "calib_method": chosen.method,
                 "float_layers": str(len(float_layers)),
                 "weight_range": "reduced" if reduced else "full",
                 "qat": "true" if chosen.step == "qat" else "false"}
        proto = finish(kept, self.props("int8", extra),
                       max_ir_version=self.target.max_ir_version)
        section: dict[str, Any] = {
            "activations": scheme.activations, "weights": scheme.weights,
            "weight_range": range_reason, "calibration": calibration,
            "random_calibration": random, "guard": guard.to_dict(),
            "max_drop": self.opts.max_drop, "blocks": blocks, "float_layers": float_layers}
        # the model written is the guard's choice, float blocks included
        section["final"] = {"top1_fp32": guard.top1_fp32, "top1_int8": chosen.top1_int8,
                            "agreement": chosen.agreement, "drop": chosen.drop}
        if fallback:  # what is written is the fp32 graph: fp32's accuracy, no speed-up
            section["final"] = {"top1_fp32": guard.top1_fp32, "top1_int8": guard.top1_fp32,
                                "agreement": 100.0 if guard.top1_fp32 is not None else None,
                                "drop": 0.0 if guard.top1_fp32 is not None else None,
                                "note": fallback}
        section["latency"] = timing
        section["verdict"] = mixed.verdict(timing, chosen.drop, self.opts.max_drop,
                                           guard.passed)
        if fallback:
            section["verdict"].update(worth_deploying=False,
                                      reason=f"int8 {fallback}: deploy model.onnx")
        self.log(mixed.verdict_line(section["verdict"]))
        if guard.passed is False:
            best = chosen.drop
            self.warn(f"int8 loses {best:.2f} top-1 points (> --max-drop {self.opts.max_drop:g})"
                      f" after {len(guard.steps)} guard steps; kept the most accurate")
        if random:
            self.warn("int8 calibrated on random inputs: for latency work only, accuracy "
                      "not measured")
        if scheme.tensorrt_checks:
            problems = tensorrt_problems(proto, allow_float=float_layers)
            section["tensorrt_checks"] = {"passed": not problems, "problems": problems}
            if problems:
                raise EdgeCNNError(f"the int8 graph would not run as int8 in TensorRT: "
                                   f"{problems[0]} ({len(problems)} problems)")
        self.report["int8"] = section
        return proto

    def qat_model(self, model: torch.nn.Module) -> onnx.ModelProto:
        from edgecnn.export.qat import qat_finetune
        from edgecnn.export.quantize import preprocess

        trained = qat_finetune(copy.deepcopy(model), self.target.int8,
                               data=self.opts.calib_data or self.src.dataset,
                               epochs=self.opts.qat_epochs, resolution=self.src.resolution,
                               mean=self.src.mean, std=self.src.std, seed=self.opts.seed)
        return preprocess(self.fp32_proto(trained))

    def fp16(self, fp32: onnx.ModelProto) -> onnx.ModelProto:
        from edgecnn.export.fp16 import fp16_max_abs, to_fp16
        from edgecnn.export.inputs import random_images
        from edgecnn.export.onnx_io import finish

        proto = finish(to_fp16(fp32), self.props("fp16"),
                       max_ir_version=self.target.max_ir_version)
        x = self.real if self.real is not None else random_images(4, self.pre, self.opts.seed)
        self.report["fp16"] = {"max_abs_vs_fp32": fp16_max_abs(fp32, proto, x),
                               "io_types": "float32"}
        return proto

    # ----------------------------------------------------------------------------------------
    def props(self, precision: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        from edgecnn.export.onnx_io import INPUT_NAME, OUTPUT_NAME
        from edgecnn.metadata import ArtifactMetadata

        notes = {"target": self.target.name, "opset": str(self.opset)}
        if self.opts.prune is not None:
            notes["pruning"] = f"{self.opts.prune_method} {self.opts.prune:g}"
        meta = ArtifactMetadata(
            model=self.src.name, alpha=self.src.alpha, resolution=self.src.resolution,
            in_chans=self.src.in_chans, mean=self.src.mean, std=self.src.std,
            classes=self.src.classes, precision=precision, trained=self.src.trained,
            input_name=INPUT_NAME, output_name=OUTPUT_NAME, layout="NCHW",
            source_checkpoint_sha256=self.src.checkpoint_sha256, dataset=self.src.dataset,
            edgecnn_version=_version(), extra={**notes, **(extra or {})})
        return meta.to_props()


def _version() -> str:
    from edgecnn import __version__

    return __version__


__all__ = ["ExportOptions", "ExportResult", "check_options", "export"]
