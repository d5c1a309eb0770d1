"""The accuracy guard: int8 is kept only as good as the user allows, and every step is told.

    search = mixed.search_blocks(fp32, make, input_shape)                      # CPU targets
    result = run_guard(fp32, calib_x, held_out, scheme, GuardConfig(method="minmax", max_drop=1.0),
                       keep_float=search.float_nodes, first=search.proto, qat=...)

0. (CPU targets) Decide by latency alone which blocks run faster in float (export/mixed.py);
   every candidate below keeps them in float, and the guard's accuracy check is what vets
   that choice (one held-out pass, not two).
1. Quantize with the chosen calibration method; evaluate fp32 and int8 on held-out data
   (top-1 of each, and how often they agree).
2. Drop above `max_drop` points: try the other calibration methods, keep the best.
3. Still above: keep the most sensitive layers in float, ranked by the noise each adds
   (int8-vs-fp32 SQNR of layer outputs), 1, 2, 4... of them, up to a quarter of the layers.
4. Still above and `qat` given: quantization-aware fine-tuning, then quantize that model.
The first candidate within `max_drop` wins (fewest float layers, cheapest step); if none is,
the most accurate one is kept and `passed` is False (the caller warns).
Without held-out data (random calibration) nothing can be measured: one quantization, and
the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgecnn.export.inputs import CalibrationReader, LabeledImages, predict_many
from edgecnn.export.onnx_io import batch_dynamic
from edgecnn.export.parity import ort_session
from edgecnn.export.quantize import layer_sqnr, quantize, quantized_nodes
from edgecnn.export.targets import CALIB_METHODS, Int8Scheme


@dataclass(frozen=True)
class GuardConfig:
    method: str = "minmax"  # the first calibration method tried
    max_drop: float = 1.0  # top-1 points int8 may lose against fp32
    max_float_fraction: float = 0.25  # at most this share of layers kept in float (0: none)
    sqnr_images: int = 32  # held-out images the per-layer SQNR is measured on


@dataclass
class Step:
    step: str  # calibrate | float_layers | qat
    method: str
    float_layers: list[str] = field(default_factory=list)
    top1_int8: float | None = None  # percent
    drop: float | None = None  # points, fp32 - int8
    agreement: float | None = None  # percent of images where int8 and fp32 agree on top-1
    note: str = ""


@dataclass
class GuardResult:
    proto: onnx.ModelProto  # the int8 model kept
    chosen: int  # index into steps
    steps: list[Step]
    top1_fp32: float | None
    passed: bool | None  # None: not measured (no held-out data)
    sensitivity: list[dict] = field(default_factory=list)  # top layers by added noise
    fp32_pred: np.ndarray | None = None  # fp32 top-1 on the held-out images (reused)

    def to_dict(self) -> dict:
        return {"top1_fp32": self.top1_fp32, "passed": self.passed, "chosen": self.chosen,
                "steps": [asdict(s) for s in self.steps], "sensitivity": self.sensitivity}


def run_guard(
    fp32: onnx.ModelProto,
    calib_x: np.ndarray,
    held_out: LabeledImages | None,
    scheme: Int8Scheme,
    config: GuardConfig,
    *,
    cache_dir: Path,
    keep_float: list[str] | tuple[str, ...] = (),
    first: onnx.ModelProto | None = None,
    qat: Callable[[], onnx.ModelProto] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> GuardResult:
    """`fp32` must be preprocessed (quantize.preprocess); `keep_float`: nodes the candidates
    keep in float (the blocks chosen for speed), dropped when that costs accuracy; `first`:
    the candidate for `config.method` with them, when already made; `qat` returns a
    preprocessed fp32 model fine-tuned with fake quantization. Every step's `float_layers` lists all the layers its candidate keeps in float."""
    reader = CalibrationReader(calib_x)
    cache = calib_caches(cache_dir)
    keep = list(keep_float)

    def make(method: str, exclude: list[str] = ()) -> onnx.ModelProto:  # type: ignore[assignment]
        return quantize(fp32, reader, scheme, method=method, exclude=[*keep, *exclude],
                        cache=cache[method])

    first = first if first is not None else make(config.method)
    if held_out is None:
        step = Step("calibrate", config.method, keep,
                    note="no held-out data: accuracy not measured")
        return GuardResult(first, 0, [step], None, None)

    # fp32 and the first int8 candidate in one pass over the held-out images
    ref, first_pred = (p.argmax(1) for p in predict_many([_eval_session(fp32),
                                                          _eval_session(first)], held_out))
    top1_fp32 = _percent(ref == held_out.y)
    candidates: list[tuple[onnx.ModelProto, Step]] = []

    def evaluate(proto: onnx.ModelProto, step: Step, pred: np.ndarray | None = None) -> bool:
        if pred is None:
            pred = predict_many([_eval_session(proto)], held_out)[0].argmax(1)
        step.top1_int8 = _percent(pred == held_out.y)
        step.drop = round(top1_fp32 - step.top1_int8, 3)
        step.agreement = _percent(pred == ref)
        candidates.append((proto, step))
        log(f"int8 guard: {step.step} ({step.method}"
            f"{', %d float layers' % len(step.float_layers) if step.float_layers else ''}): "
            f"top-1 {step.top1_int8:.2f}% vs fp32 {top1_fp32:.2f}% (drop {step.drop:.2f})")
        return step.drop <= config.max_drop

    def result(passed: bool, sensitivity: list[dict] | None = None) -> GuardResult:
        if passed:
            index = len(candidates) - 1
        else:  # none within the limit: the most accurate, the earliest among equals
            index = max(range(len(candidates)), key=lambda i: (candidates[i][1].top1_int8, -i))
        return GuardResult(candidates[index][0], index, [s for _, s in candidates], top1_fp32,
                           passed, sensitivity or [], ref)

    # 1-2. Calibration methods, the chosen one first.
    if evaluate(first, Step("calibrate", config.method, keep), first_pred):
        return result(True)
    if keep:  # The blocks in float were chosen for speed; they must not cost accuracy.
        # ONNX Runtime 1.31 computes ShuffleNet v2 x1.0 wrongly with its first depthwise conv
        # in float (11.4% top-1 on held-out mnist5k; OpenVINO runs the same file at 93.6%).
        keep = []
        if evaluate(make(config.method), Step("calibrate", config.method,
                                              note="float blocks back in int8")):
            return result(True)
        if candidates[-1][1].top1_int8 < candidates[0][1].top1_int8:  # type: ignore[operator]
            keep = list(keep_float)  # float was no worse: the later steps keep it
    for method in [m for m in CALIB_METHODS if m != config.method]:
        if evaluate(make(method), Step("calibrate", method, keep)):
            return result(True)
    # 3. Sensitive layers in float, ranked on the most accurate candidate so far.
    best_proto, best = max(candidates, key=lambda c: c[1].top1_int8)  # type: ignore[arg-type]
    best_method = best.method
    ranked = layer_sqnr(fp32, best_proto, held_out.array(config.sqnr_images))
    sensitivity = [{"node": r.node, "op": r.op, "sqnr_db": round(r.sqnr_db, 2),
                    "added_noise": r.added_noise} for r in ranked[:10]]
    limit = int(len(quantized_nodes(fp32)) * config.max_float_fraction)
    k = 1
    while k <= limit:
        exclude = [r.node for r in ranked[:k]]
        if evaluate(make(best_method, exclude),
                    Step("float_layers", best_method, [*keep, *exclude])):
            return result(True, sensitivity)
        k = k * 2 if k * 2 <= limit or k == limit else limit

    # 4. Quantization-aware training.
    if qat is not None:
        log("int8 guard: quantization-aware training")
        trained = qat()
        proto = quantize(trained, CalibrationReader(calib_x), scheme, method=best_method,
                         exclude=keep)
        if evaluate(proto, Step("qat", best_method, keep,
                                note="fine-tuned with fake quantization")):
            return result(True, sensitivity)
    return result(False, sensitivity)


def _eval_session(proto: onnx.ModelProto):  # noqa: ANN202
    """A session for accuracy runs: batches of 16 when the graph's batch can be freed, every
    core, idle workers parked rather than spinning (so a busy machine loses little).
    MobileNet alpha 0.5 at 224, fp32 + int8 per image, ONNX Runtime 1.31 on a 2-core Intel
    Xeon: 4.8 ms at batch 64 and 1 thread, 2.1 ms at batch 16 and 2 threads."""
    return ort_session(batch_dynamic(proto) or proto, threads=0, spinning=False)


def _percent(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)) * 100.0, 3)


def calib_caches(cache_dir: Path) -> dict[str, Path]:
    """One calibration cache per method: ranges are computed once per export and reused by
    every candidate (only the float layers change between them, not the float graph)."""
    return {m: cache_dir / f"calib-{m}.json" for m in CALIB_METHODS}
