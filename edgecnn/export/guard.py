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
The guard stops at the first candidate within `max_drop` (fewest float layers, cheapest
step). It makes and scores candidates (`decision.Candidate` values); which one the int8 file
holds is `decision.choose`'s call, with latency beside accuracy.
Without held-out data (random calibration) nothing can be measured: one quantization, and
the report says so.
The int8 candidates are scored with the arithmetic the target computes. Where the recipe's
8-bit weights would clip in this CPU's fused kernels (x86 without VNNI exporting for Arm,
a VNNI x86 or TensorRT; edgecnn.host.int8_saturates) their Q/DQ pairs run as their own ops,
which is the target's int32-accumulating arithmetic to float rounding: a MobileNet v1 0.5x
for cpu-arm on held-out mnist5k scored 75.3% fused on an AVX2 EPYC and 77.5% so (fp32 77.4%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgecnn.export.decision import Accuracy, Candidate
from edgecnn.export.inputs import CalibrationReader, LabeledImages, predict_many
from edgecnn.export.onnx_io import batch_dynamic
from edgecnn.export.parity import ort_session
from edgecnn.export.quantize import layer_sqnr, quantize, quantized_nodes
from edgecnn.export.targets import CALIB_METHODS, Int8Scheme
from edgecnn.host import int8_saturates


@dataclass(frozen=True)
class GuardConfig:
    method: str = "minmax"  # the first calibration method tried
    max_drop: float = 1.0  # top-1 points int8 may lose against fp32
    max_float_fraction: float = 0.25  # at most this share of layers kept in float (0: none)
    sqnr_images: int = 32  # held-out images the per-layer SQNR is measured on
    # "accuracy": top-1 drop against the labels; "agreement": int8 vs fp32 top-1 agreement,
    # for models whose classes are not the held-out data's (an ImageNet model on the user's
    # photos), which must reach min_agreement percent
    criterion: str = "accuracy"
    min_agreement: float = 99.0


@dataclass
class GuardResult:
    """The candidates the guard made, in order, each with its held-out accuracy; it stops at
    the first within the budget. Which one the int8 file holds is decision.choose's call."""

    candidates: list[Candidate]
    top1_fp32: float | None  # None: not measured (no held-out data, or agreement criterion)
    sensitivity: list[dict] = field(default_factory=list)  # top layers by added noise
    fp32_pred: np.ndarray | None = None  # fp32 top-1 on the held-out images (reused)
    int8_arithmetic: str = "fused"  # how the int8 candidates ran: "fused" | "simulated"

    def to_dict(self, chosen: int | None) -> dict:
        """`chosen`: the index of the candidate the int8 file holds (None: no file)."""
        steps = [{"step": c.name, "method": c.method, "float_layers": list(c.float_layers),
                  "top1_int8": c.accuracy.top1, "drop": c.accuracy.drop,
                  "agreement": c.accuracy.agreement, "passed": c.accuracy.passed,
                  "note": c.note} for c in self.candidates]
        passed = None if chosen is None else self.candidates[chosen].accuracy.passed
        return {"top1_fp32": self.top1_fp32, "passed": passed, "chosen": chosen,
                "int8_arithmetic": self.int8_arithmetic, "steps": steps,
                "sensitivity": self.sensitivity}


def run_guard(
    fp32: onnx.ModelProto,
    calib_x: np.ndarray | LabeledImages,
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
    """`fp32` must be preprocessed (quantize.preprocess); `keep_float`: nodes the first
    candidate keeps in float (the blocks the per-block search chose), dropped when that costs
    accuracy; `first`: that candidate when already made; `qat` returns a preprocessed fp32
    model fine-tuned with fake quantization. Every candidate's `float_layers` lists all the
    layers it keeps in float."""
    reader = CalibrationReader(calib_x)
    cache = calib_caches(cache_dir)
    keep = list(keep_float)
    first_name = "placement" if keep else "int8"

    def make(method: str, exclude: list[str] = ()) -> onnx.ModelProto:  # type: ignore[assignment]
        return quantize(fp32, reader, scheme, method=method, exclude=[*keep, *exclude],
                        cache=cache[method])

    first = first if first is not None else make(config.method)
    if held_out is None:
        return GuardResult([Candidate(first_name, first, tuple(keep), config.method,
                                      note="no held-out data: accuracy not measured")], None)
    fused = not (scheme.weight_range == "full" and int8_saturates())
    if not fused:
        log("int8 guard: this CPU's int8 kernels clip the recipe's 8-bit weights (x86 without "
            "VNNI); int8 is scored with its Q/DQ pairs run as their own ops, the arithmetic "
            "of the target, which accumulates in int32")

    def int8_session(proto: onnx.ModelProto):  # noqa: ANN202
        return _eval_session(proto, qdq_fusion=fused)

    # fp32 and the first int8 candidate in one pass over the held-out images
    ref, first_pred = (p.argmax(1) for p in predict_many([_eval_session(fp32),
                                                          int8_session(first)], held_out))
    agreement = config.criterion == "agreement"
    top1_fp32 = None if agreement else _percent(ref == held_out.y)
    made: list[Candidate] = []

    def score(c: Candidate) -> float:
        return c.accuracy.agreement if agreement else c.accuracy.top1  # type: ignore[return-value]

    def evaluate(name: str, proto: onnx.ModelProto, method: str, floats: list[str],
                 pred: np.ndarray | None = None, note: str = "") -> bool:
        if pred is None:
            pred = predict_many([int8_session(proto)], held_out)[0].argmax(1)
        agree = _percent(pred == ref)
        if agreement:
            acc = Accuracy(agreement=agree, passed=agree >= config.min_agreement)
            log(f"int8 guard: {name} ({method}): top-1 agreement with fp32 {agree:.2f}%")
        else:
            top1 = _percent(pred == held_out.y)
            drop = round(top1_fp32 - top1, 3)
            acc = Accuracy(top1, drop, agree, passed=drop <= config.max_drop)
            log(f"int8 guard: {name} ({method}"
                f"{', %d float layers' % len(floats) if floats else ''}): "
                f"top-1 {top1:.2f}% vs fp32 {top1_fp32:.2f}% (drop {drop:.2f})")
        made.append(Candidate(name, proto, tuple(floats), method, acc, note=note))
        return bool(acc.passed)

    def result(sensitivity: list[dict] | None = None) -> GuardResult:
        return GuardResult(made, top1_fp32, sensitivity or [], ref,
                           "fused" if fused else "simulated")

    # 1-2. Calibration methods, the chosen one first.
    if evaluate(first_name, first, config.method, keep, first_pred):
        return result()
    if keep:  # The blocks in float were chosen for speed; they must not cost accuracy.
        # ONNX Runtime 1.31 computes ShuffleNet v2 x1.0 wrongly with its first depthwise conv
        # in float (11.4% top-1 on held-out mnist5k; OpenVINO runs the same file at 93.6%).
        keep = []
        if evaluate("int8", make(config.method), config.method, [],
                    note="float blocks back in int8"):
            return result()
        if score(made[-1]) < score(made[0]):
            keep = list(keep_float)  # float was no worse: the later steps keep it
    for method in [m for m in CALIB_METHODS if m != config.method]:
        if evaluate(f"calibrate:{method}", make(method), method, keep):
            return result()
    # 3. Sensitive layers in float, ranked on the most accurate candidate so far.
    best = max(made, key=score)
    ranked = layer_sqnr(fp32, best.proto, held_out.array(config.sqnr_images))
    sensitivity = [{"node": r.node, "op": r.op, "sqnr_db": round(r.sqnr_db, 2),
                    "added_noise": r.added_noise} for r in ranked[:10]]
    limit = int(len(quantized_nodes(fp32)) * config.max_float_fraction)
    k = 1
    while k <= limit:
        exclude = [r.node for r in ranked[:k]]
        if evaluate("float_layers", make(best.method, exclude), best.method, [*keep, *exclude]):
            return result(sensitivity)
        k = k * 2 if k * 2 <= limit or k == limit else limit

    # 4. Quantization-aware training.
    if qat is not None:
        log("int8 guard: quantization-aware training")
        trained = qat()
        proto = quantize(trained, CalibrationReader(calib_x), scheme, method=best.method,
                         exclude=keep)
        if evaluate("qat", proto, best.method, keep, note="fine-tuned with fake quantization"):
            return result(sensitivity)
    return result(sensitivity)


def _eval_session(proto: onnx.ModelProto, qdq_fusion: bool = True):  # noqa: ANN202
    """A session for accuracy runs: batches of 16 when the graph's batch can be freed, every
    core, idle workers parked rather than spinning (so a busy machine loses little);
    `qdq_fusion` False: int8 as Q/DQ ops (run_guard).
    MobileNet alpha 0.5 at 224, fp32 + int8 per image, ONNX Runtime 1.31 on a 2-core Intel
    Xeon: 4.8 ms at batch 64 and 1 thread, 2.1 ms at batch 16 and 2 threads."""
    return ort_session(batch_dynamic(proto) or proto, threads=0, spinning=False,
                       qdq_fusion=qdq_fusion)


def _percent(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)) * 100.0, 3)


def calib_caches(cache_dir: Path) -> dict[str, Path]:
    """One calibration cache per method: ranges are computed once per export and reused by
    every candidate (only the float layers change between them, not the float graph)."""
    return {m: cache_dir / f"calib-{m}.json" for m in CALIB_METHODS}
