"""`export(ExportSpec(...))`: a zoo model, checkpoint, nn.Module or ONNX file to an artifact.

Reading order of one export:
  1. the spec judged against the target (one-line errors before any work or any file)
  2. the model: zoo name or import path (initialized weights), checkpoint (rebuilt from it
     alone), the user's module, or a foreign ONNX file (normalized, fitted to the target)
  3. data: calibration images (train split), held-out images (val split)
  4. pruning (structured or unstructured) and fine-tuning
  5. fp32 ONNX: export, onnxslim, BN folded, metadata, checker, parity in ORT and OpenVINO
  6. int8 (accuracy guard) and/or fp16
  7. export.json, then the directory is renamed into place
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx
import torch

from edgecnn.errors import EdgeCNNError
from edgecnn.export.int8_stage import Int8Stage
from edgecnn.export.spec import ExportSpec, OnnxSource
from edgecnn.export.targets import Target

FORMAT = "edgecnn-export/1"


@dataclass
class ExportResult:
    path: Path
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def export(spec: ExportSpec, *, log: Callable[[str], None] = lambda line: None
           ) -> ExportResult:
    """Run one export (see the module doc); raises EdgeCNNError on bad input."""
    from edgecnn.export.artifact import ArtifactDir, check_destination
    from edgecnn.export.source import resolve_source

    started = time.perf_counter()
    if not isinstance(spec, ExportSpec):
        raise EdgeCNNError(f"export takes an ExportSpec, got {type(spec).__name__}")
    target = spec.check()
    opset = target.opset if spec.opset is None else spec.opset
    if spec.output:  # a refusal (exists) before the model is read
        check_destination(Path(spec.output), spec.force)
    if isinstance(spec.source, OnnxSource):  # a foreign file, fitted to the target
        from edgecnn.export.foreign import from_onnx

        src = from_onnx(spec.source, opset=opset, max_ir_version=target.max_ir_version,
                        dynamic_batch=spec.dynamic_batch)
    else:
        src = resolve_source(spec.source, seed=spec.seed)
    if spec.prune is not None and spec.prune.finetune_epochs and not src.dataset:
        raise EdgeCNNError("--finetune-epochs needs the data set the model was trained on "
                           "(a checkpoint, or ModuleSource(data=...))")
    out = Path(spec.output) if spec.output else Path("exports") / \
        f"{_safe(src.name)}-a{src.alpha:g}-r{src.resolution}"
    # The destination is checked and its temporary sibling made before any work or warning:
    # a refusal (exists, read-only) comes first and alone, and nothing is lost to a late one.
    with ArtifactDir(out, force=spec.force) as artifact:
        run = _Export(spec, target, opset, src, log)
        run.build(artifact)
        run.report["timings_s"]["total"] = round(time.perf_counter() - started, 2)
        artifact.write_json("export.json", run.report)
        path = artifact.commit()
    return ExportResult(path, run.report, run.warnings)


def _safe(name: str) -> str:
    """An import path as a directory name: mypkg.nets:small_cnn -> mypkg.nets.small_cnn."""
    return re.sub(r"[^A-Za-z0-9_.-]+", ".", name)


class _Export(Int8Stage):
    """The steps of one export, sharing the model, data and report as they go."""

    def __init__(self, spec: ExportSpec, target: Target, opset: int, src: Any,
                 log: Callable[[str], None]) -> None:
        from edgecnn.export.inputs import Preprocess

        self.spec, self.target, self.opset, self.src, self.log = spec, target, opset, src, log
        from edgecnn.metadata import policy_for_dataset  # the training data's choice

        self.pre = Preprocess(src.resolution, src.mean, src.std,
                              policy=policy_for_dataset(src.dataset))
        self.warnings: list[str] = []
        self.timings: dict[str, float] = {}
        self.unrounded: torch.nn.Module | None = None  # pruning's unrounded reference
        self.report: dict[str, Any] = {
            "format": FORMAT, "edgecnn_version": _version(), "options": spec.to_dict(),
            "source": src.kind, "model": src.name, "alpha": src.alpha, "resolution": src.resolution,
            "in_chans": src.in_chans, "num_classes": len(src.classes), "trained": src.trained,
            "checkpoint": src.checkpoint or None,
            "checkpoint_sha256": src.checkpoint_sha256 or None,
            "target": {"name": target.name, "source": target.source,
                       "max_ir_version": target.max_ir_version,
                       "int8_scheme": asdict(target.int8)},
            "opset": opset, "dynamic_batch": spec.dynamic_batch, "warnings": self.warnings,
            "timings_s": self.timings,
        }
        if src.kind == "onnx":
            self.report["onnx_file"] = src.onnx_report
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
        from edgecnn.export.onnx_io import onnx_layers
        from edgecnn.export.parity import require_parity

        # A line as each long stage starts: on a terminal it becomes the ticker's stage
        # (cli/export.py, sweep), so minutes of work are never a silent wait.
        t = time.perf_counter()
        self.log("stage: loading data")
        self.load_data()
        self.timed("data", t)
        model = self.src.model
        unpruned = None
        if self.spec.prune is not None:
            t = time.perf_counter()
            unpruned = self.fp32_proto(model)
            model = self.prune(model)
            self.timed("prune", t)
        elif self.spec.int8 is None and self.src.onnx is None:  # the one top-1 on screen
            self.report["top1_fp32"] = self.torch_accuracy(model)
            self.report["accuracy_data"] = self.src.dataset or None
        t = time.perf_counter()
        self.log("stage: fp32 ONNX (export, simplify, BatchNorm folding)")
        fp32 = self.fp32_proto(model) if self.src.onnx is None else self.fp32_from_onnx()
        self.log("stage: fp32 parity with torch in each runtime")
        parity = self.parity(model, fp32)
        self.report["parity"] = [asdict(p) | {"ok": p.ok} for p in parity]
        require_parity(parity)
        self.timed("fp32", t)
        self.report["ir_version"] = fp32.ir_version
        layers = onnx_layers(fp32)  # (name, op, shape, MACs) of each Conv/Gemm/MatMul
        self.report["params"], self.report["macs"] = self.counts(model, layers)
        self.report["channel_alignment"] = self.alignment(layers)
        if unpruned is not None and self.spec.prune.method == "structured":
            self.latency(unpruned, fp32, None if self.unrounded is None
                         else self.fp32_proto(self.unrounded))
        files = {"model.onnx": (fp32, "fp32")}
        if self.spec.int8 is not None:
            t = time.perf_counter()
            self.log("stage: int8 (calibration, quantization, the accuracy guard)")
            int8 = self.int8(model, fp32)
            if int8 is not None:  # no file without int8 arithmetic (export/decision.py)
                files["model.int8.onnx"] = (int8, "int8")
            self.timed("int8", t)
        if self.spec.fp16:
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
        from edgecnn.export.inputs import load_images

        self.calib = self.held_out = self.real = None
        int8 = self.spec.int8
        data = int8.calib_data if int8 is not None else None
        n = len(self.src.classes)
        self.criterion = "accuracy"
        if int8 is not None and not int8.random:
            self.calib = load_images(data, "train", self.pre, limit=int8.calib_samples,
                                     seed=self.spec.seed)
            if len(self.calib) < int8.calib_samples:
                self.log(f"calibrating on all {len(self.calib):,} training images of {data} "
                         f"(--calib-samples asked for {int8.calib_samples:,})")
            self.held_out = load_images(data, "val", self.pre)
            if not self.same_classes(self.held_out.classes):
                # e.g. an ImageNet model calibrated on the user's photos: no labels to score
                self.criterion = "agreement"
                if int8.qat_epochs:
                    raise EdgeCNNError(f"--qat-epochs needs data with the model's classes; "
                                       f"{data} has {len(self.held_out.classes)}, the model "
                                       f"{n}")
                self.log(f"the model's {n} classes are not {data}'s "
                         f"{len(self.held_out.classes)}: the int8 guard compares int8 with "
                         f"fp32 (top-1 agreement >= {int8.min_agreement:g}%)")
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
            "calibration": data, "guard_criterion": self.criterion if int8 else None,
            "calibration_images": 0 if self.calib is None else len(self.calib),
            "held_out_images": 0 if self.held_out is None else len(self.held_out)}

    def same_classes(self, data_classes: tuple[str, ...]) -> bool:
        """Whether held-out labels score this model: as many classes, and the same names
        unless the model's are only indices."""
        ours = tuple(self.src.classes)
        if len(ours) != len(data_classes):
            return False
        return ours == tuple(str(i) for i in range(len(ours))) or ours == tuple(data_classes)

    def prune(self, model: torch.nn.Module) -> torch.nn.Module:
        from edgecnn.export.prune import alignment, make_permanent, prune, ratio_steps
        from edgecnn.train.config import OPTIMIZER_DEFAULTS

        config = self.spec.prune
        source, model = model, copy.deepcopy(model)  # the source stays the unpruned reference
        acc_before = self.torch_accuracy(model)
        opt = config.finetune_optimizer
        lr = OPTIMIZER_DEFAULTS[opt]["lr"] / 10  # finetune's rule: a tenth of from-scratch
        steps = []
        for ratio in ratio_steps(config):  # one step, or iterative (unstructured)
            report = prune(model, replace(config, ratio=ratio), resolution=self.src.resolution,
                           in_chans=self.src.in_chans)
            self.log(f"pruned ({config.method}): MACs {report.macs_before:,} -> "
                     f"{report.macs_after:,}, params {report.params_before:,} -> "
                     f"{report.params_after:,}, sparsity {report.sparsity:.1%}")
            acc_pruned = self.torch_accuracy(model)
            if config.finetune_epochs:
                from edgecnn.train import finetune

                n = config.finetune_epochs
                self.log(f"fine-tuning {n} epoch{'' if n == 1 else 's'} on {self.src.dataset} "
                         f"({opt}, lr {lr:g})")
                finetune(model, self.src.dataset, epochs=config.finetune_epochs,
                         resolution=self.src.resolution, mean=self.src.mean, std=self.src.std,
                         seed=self.spec.seed, optimizer=opt, lr=lr)
            make_permanent(model)  # the next step's ranking sees these zeros as the smallest
            steps.append({"ratio": round(ratio, 4), "top1_pruned": acc_pruned,
                          "top1_after": self.torch_accuracy(model) if config.finetune_epochs
                          else acc_pruned})
        for layer in report.unpruned:
            self.log(f"not pruned: {layer['layer']} ({layer['reason']})")
        pruned_top1 = steps[-1]["top1_pruned"]
        if not config.finetune_epochs and None not in (acc_before, pruned_top1) \
                and acc_before - pruned_top1 > 1.0:  # the int8 guard's default budget
            self.warn(f"pruning cost {acc_before - pruned_top1:.1f} top-1 points "
                      f"({acc_before:.1f}% -> {pruned_top1:.1f}%) and nothing fine-tuned it: "
                      "--finetune-epochs N recovers most of it")
        # the same target without rounding: what alignment bought, apart from the removal
        self.unrounded, aligned = alignment(source, config, model,
                                            resolution=self.src.resolution,
                                            in_chans=self.src.in_chans)
        out = asdict(report)
        out.update(finetune_epochs=config.finetune_epochs,
                   finetune_optimizer=opt if config.finetune_epochs else None,
                   finetune_lr=lr if config.finetune_epochs else None, top1_before=acc_before,
                   top1_pruned=steps[-1]["top1_pruned"], top1_after=steps[-1]["top1_after"],
                   steps=steps, accuracy_data=self.src.dataset or None, alignment=aligned)
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
        from edgecnn.export.bnfold import fold_batchnorms
        from edgecnn.export.onnx_io import finish, simplify, to_onnx_proto

        sample = torch.zeros(1, self.src.in_chans, self.src.resolution, self.src.resolution)
        proto = to_onnx_proto(model, sample, opset=self.opset,
                              dynamic_batch=self.spec.dynamic_batch,
                              max_ir_version=self.target.max_ir_version)
        proto, _ = fold_batchnorms(simplify(proto))  # BN before a conv (pre-activation nets)
        return finish(proto, self.props("fp32"), max_ir_version=self.target.max_ir_version)

    def fp32_from_onnx(self) -> onnx.ModelProto:
        """A foreign file, already normalized and fitted (export/foreign.py): onnxslim
        (Conv+BN fusion among the rest), our metadata next to the file's own, the checker."""
        from edgecnn.export.onnx_io import finish, simplify

        proto = simplify(copy.deepcopy(self.src.onnx))
        left = sum(n.op_type == "BatchNormalization" for n in proto.graph.node)
        if left:  # a BN that follows no conv stays: legal, only slower
            self.warn(f"{left} BatchNormalization nodes could not be folded into a conv")
        return finish(proto, self.props("fp32"), max_ir_version=self.target.max_ir_version)

    def parity(self, model: torch.nn.Module, proto: onnx.ModelProto) -> list:
        from edgecnn.export.inputs import random_images
        from edgecnn.export.parity import check_parity, parity_runners

        consumers = parity_runners(proto)  # made once, used twice
        results = [check_parity(model, proto, random_images(4, self.pre, self.spec.seed),
                                "random", consumers)]
        if self.real is not None:
            results.append(check_parity(model, proto, self.real, self.real_name, consumers))
        return results

    def counts(self, model: torch.nn.Module, layers: list) -> tuple[dict, dict]:
        """Parameters of the model; MACs of the fp32 graph as written (`layers`, from
        onnx_io.onnx_layers: edgecnn.profile's convention without a torch pass, whose first
        use in a process costs a second)."""
        import numpy as np

        macs = sum(layer[3] for layer in layers)
        if self.src.onnx is not None:  # no torch graph: the ONNX file's initializers
            params = int(sum(np.prod(t.dims) for t in self.src.onnx.graph.initializer))
            return {"before": params, "after": params}, {"before": macs, "after": macs}
        params = sum(p.numel() for p in model.parameters())
        pr = self.report.get("pruning")
        if pr:
            return ({"before": pr["params_before"], "after": params},
                    {"before": pr["macs_before"], "after": macs})
        return {"before": params, "after": params}, {"before": macs, "after": macs}

    def alignment(self, layers: list) -> dict[str, Any] | None:
        """Widths that are not multiples of 8, and what they cost (the CLI prints the line):
        the pruned widths after structured pruning, else a zoo model's widths at its alpha
        as the graph holds them; None when they align or the model is not the zoo's."""
        from edgecnn.profile import MISALIGNED_COST, LayerProfile, Profile, channel_alignment
        from edgecnn.registry import get_spec

        channels = (self.report.get("pruning") or {}).get("channels")
        if channels:
            odd = sorted({after for _, after in channels.values() if after % 8})
            return None if not odd else {"widths": odd, "warning": (
                f"pruning left {len(odd)} channel counts that are not multiples of 8 "
                f"({'/'.join(map(str, odd[:8]))}); {MISALIGNED_COST}. --prune-round-to 8 "
                "(the default) rounds them")}
        if self.src.alpha == 1.0 or self.src.kind == "module":
            return None  # the paper's widths, or a module that is no zoo family's
        if self.src.kind != "zoo":  # a checkpoint or ONNX file of a zoo model, an import path
            try:
                get_spec(self.src.name)
            except Exception:  # noqa: BLE001  (a user's builder failing: no warning, no error)
                return None
        rows = [LayerProfile(name, "Conv2d" if op == "Conv" else "Linear", shape, 0, macs)
                for name, op, shape, macs in layers]
        return channel_alignment(Profile(
            model=self.src.name, alpha=self.src.alpha, resolution=self.src.resolution,
            num_classes=len(self.src.classes), in_chans=self.src.in_chans, params=0,
            macs=sum(r.macs for r in rows), layers=rows))

    def latency(self, unpruned: onnx.ModelProto, pruned: onnx.ModelProto,
                unrounded: onnx.ModelProto | None) -> None:
        """Unpruned vs pruned, and the unrounded reference between them when there is one
        (export/prune.py `alignment`): speedup = removal x alignment."""
        from edgecnn.export.parity import compare_latency

        protos = {"unpruned": unpruned, "pruned": pruned}
        if unrounded is not None:
            protos["pruned_unrounded"] = unrounded
        ms = compare_latency(protos, self.src.resolution, self.src.in_chans)
        speedup = ms["unpruned"] / ms["pruned"]
        split = {} if unrounded is None else {
            "speedup_removal": round(ms["unpruned"] / ms["pruned_unrounded"], 3),
            "speedup_alignment": round(ms["pruned_unrounded"] / ms["pruned"], 3)}
        self.report["latency_ms"] = {**{k: round(v, 4) for k, v in ms.items()},
                                     "speedup": round(speedup, 3), **split,
                                     "runtime": "onnxruntime", "batch": 1, "threads": 1}
        self.log(f"ONNX Runtime latency: {ms['unpruned']:.3f} ms -> {ms['pruned']:.3f} ms "
                 f"({speedup:.2f}x)" + (f"; unrounded {ms['pruned_unrounded']:.3f} ms"
                                        if unrounded is not None else ""))
        if speedup < 1.05:
            self.warn(f"the pruned model is not faster in ONNX Runtime ({ms['unpruned']:.3f} ms "
                      f"-> {ms['pruned']:.3f} ms); structured pruning is meant to buy speed")

    # ----------------------------------------------------------------------------------------
    def fp16(self, fp32: onnx.ModelProto) -> onnx.ModelProto:
        from edgecnn.export.fp16 import fp16_max_abs, to_fp16
        from edgecnn.export.inputs import random_images
        from edgecnn.export.onnx_io import finish

        proto = finish(to_fp16(fp32), self.props("fp16"),
                       max_ir_version=self.target.max_ir_version)
        x = self.real if self.real is not None else random_images(4, self.pre, self.spec.seed)
        self.report["fp16"] = {"max_abs_vs_fp32": fp16_max_abs(fp32, proto, x),
                               "io_types": "float32"}
        return proto

    # ----------------------------------------------------------------------------------------
    def props(self, precision: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        from edgecnn.export.onnx_io import INPUT_NAME, OUTPUT_NAME
        from edgecnn.metadata import ArtifactMetadata

        notes = {"target": self.target.name, "opset": str(self.opset)}
        if self.spec.prune is not None:
            notes["pruning"] = f"{self.spec.prune.method} {self.spec.prune.ratio:g}"
        if self.src.kind == "onnx":
            notes["source"] = f"onnx file sha256 {self.src.onnx_report['sha256'][:16]}"
        meta = ArtifactMetadata(
            model=self.src.name, alpha=self.src.alpha, resolution=self.src.resolution,
            in_chans=self.src.in_chans, mean=self.src.mean, std=self.src.std,
            classes=self.src.classes, precision=precision, trained=self.src.trained,
            input_name=INPUT_NAME, output_name=OUTPUT_NAME, layout="NCHW",
            source_checkpoint_sha256=self.src.checkpoint_sha256, dataset=self.src.dataset,
            edgecnn_version=_version(), extra={**notes, **(extra or {})})
        return {**self.src.onnx_props, **meta.to_props()}  # a foreign file's own props kept


def _version() -> str:
    from edgecnn import __version__

    return __version__


__all__ = ["ExportResult", "ExportSpec", "export"]
