"""Activation ranges for int8: ONNX Runtime's calibrators, run faster and made portable.

    calibrate(Path("model.onnx"), CalibrationReader(x, 16), "minmax", Path("calib.json"))
    quantize.quantize(..., cache=Path("calib.json"))      # reads the ranges back

What this adds to ONNX Runtime's calibrators (each explained at `calibrate`): per-channel
reductions in an optimized session, ranges of Relu/Clip outputs computed instead of
observed, a Concat's branches at the Concat's range, histograms fed a chunk at a time, and
every range end snapped to 6 significant bits (`snap`), so that the ranges do not depend on
the CPU whose kernels ran the fp32 graph.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecnn.export.inputs import CalibrationReader


def calibrate(model_path: Path, reader: CalibrationReader, method: str, cache: Path,
              chunk: int = 32) -> None:
    """Activation ranges of every tensor, written to ONNX Runtime's calibration cache.

    ONNX Runtime's calibrators add reductions (min/max) or outputs (histograms) for every
    tensor to a copy of the graph.
    - min/max: two changes to how that copy runs, none to what it computes. It reduces per
      channel in the graph (the calibrator's `per_channel`) and over the channels here:
      ONNX Runtime's ReduceMin over a whole tensor runs on one thread, per channel on all.
      It runs in our session, with the graph optimized, where the calibrator's disables
      every optimization. MobileNet v1 0.5x at 224, batches of 16, 2-vCPU AMD EPYC (Zen 3),
      ONNX Runtime 1.31: 9.9 ms per image -> 6.9 ms; the snapped ranges came out identical.
      A third: the range of a Relu's or constant Clip's output is its input's range clamped
      (min and max commute with a non-decreasing function), so it is computed, not observed
      (`_unobserve_clamps`): 5.4-5.7 ms -> 3.9 ms per image, the same case.
      A graph with a tensor whose channel axis is unknown (a scalar, an unknown shape) is
      reduced whole, as before.
    - a Concat's inputs that nothing else reads take the Concat's range (its output's):
      each branch is then quantized once, at the scale the joined tensor has anyway, where
      its own scale meant rounding twice (branch, then Concat), and the runtimes join int8
      without rescaling. NNCF does the same ("unified scales"). SqueezeNet 1.1 at 224,
      1 thread, 2-vCPU Xeon (AVX-512 VNNI, AMX): ONNX Runtime 2.78 -> 2.62 ms, OpenVINO
      1.54 -> 1.39 ms.
    - the histogram methods, as ONNX Runtime runs them, keep every intermediate tensor of
      every image (256 images of MobileNet at 224 px: gigabytes); fed `chunk` batches at a
      time, they fold each chunk into their histograms and free the tensors.
    """
    from onnxruntime.quantization.calibrate import (
        MinMaxCalibrater,
        TensorData,
        create_calibrator,
        save_tensors_data,
    )

    from edgecnn.export.parity import ort_session

    with tempfile.TemporaryDirectory() as tmp:
        augmented = Path(tmp, "augmented.onnx")
        reader.rewind()
        if method == "minmax":
            calibrator = MinMaxCalibrater(model_path, None, augmented_model_path=str(augmented))
            calibrator.per_channel = _channel_axes_known(calibrator)
            calibrator.augment_graph()
            derived = _unobserve_clamps(calibrator.model)
            onnx.save(calibrator.model, str(augmented))
            calibrator.infer_session = ort_session(augmented, threads=0, spinning=False)
            # one call: a few numbers per tensor and batch are kept (and the calibrator's
            # merge of two calls fails on per-channel arrays)
            calibrator.collect_data(reader)
        else:
            options = {"percentile": 99.999, "num_bins": 2048} if method == "percentile" else {}
            calibrator = create_calibrator(model_path, None,
                                           augmented_model_path=str(augmented),
                                           calibrate_method=ort_method(method),
                                           extra_options=options)
            while part := [b for b in (reader.get_next() for _ in range(chunk)) if b is not None]:
                # one shape per call: the histogram calibrators stack a call's batches into
                # one array, and a last, shorter batch (123 images in batches of 16) cannot
                for _, same in itertools.groupby(part,
                                                 key=lambda b: next(iter(b.values())).shape):
                    calibrator.collect_data(CalibrationReader.of_batches(list(same)))
        data = calibrator.compute_data()
        if method == "minmax":
            data = _with_clamped(data, derived)
        for tensor in data.data.values():
            low, high = tensor.lowest, tensor.highest
            if method == "minmax":  # per channel -> per tensor, in its per-tensor shape (1,)
                low, high = np.nanmin(low).reshape(1), np.nanmax(high).reshape(1)
            # the same ranges from every CPU's kernels
            tensor.lowest, tensor.highest = snap(low, -1), snap(high, 1)
        for src, out in _concat_inputs(onnx.load(str(model_path))).items():
            if src in data and out in data:
                data[src] = TensorData(lowest=data[out].lowest.copy(),
                                       highest=data[out].highest.copy())
        save_tensors_data(data, str(cache))
        del calibrator


def _concat_inputs(model: onnx.ModelProto) -> dict[str, str]:
    """input -> output of each Concat, for the inputs that nothing else reads: they take the
    Concat's range (see calibrate). A graph output or a tensor with another reader keeps
    its own."""
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    graph_outputs = {o.name for o in model.graph.output}
    return {name: node.output[0] for node in model.graph.node
            if node.op_type == "Concat" and node.domain in ("", "ai.onnx")
            for name in node.input
            if readers.get(name) == 1 and name not in graph_outputs}


def _unobserve_clamps(augmented: onnx.ModelProto) -> dict[str, tuple[str, float, float]]:
    """Drops the min/max reductions of each Relu's or constant Clip's output whose input is
    reduced too, from ONNX Runtime's augmented graph (in place). Returns, in graph order,
    output -> (input, low, high): the output's range is the input's clamped to [low, high].
    Why: every reduced tensor is copied out of ONNX Runtime's blocked layout (NCHWc) and
    read twice; a Relu's output is as large as its input."""
    observed = {o.name[:-len("_ReduceMin")] for o in augmented.graph.output
                if o.name.endswith("_ReduceMin")}
    consts = {i.name: i for i in augmented.graph.initializer}
    derived: dict[str, tuple[str, float, float]] = {}
    for node in augmented.graph.node:
        if node.op_type not in ("Relu", "Clip") or node.domain not in ("", "ai.onnx"):
            continue
        src, out = node.input[0], node.output[0]
        if src not in observed or out not in observed:
            continue
        bounds = _clip_bounds(node, consts)
        if bounds is not None:
            derived[out] = (src, *bounds)
    # each reduction is ReduceMin -> T_ReduceMin_Reshape -> Reshape -> T_ReduceMin (output)
    ends = {f"{t}_{op}" for t in derived for op in ("ReduceMin", "ReduceMax")}
    drop = ends | {f"{e}_Reshape" for e in ends}
    graph = augmented.graph
    keep = [n for n in graph.node if n.output[0] not in drop]
    # opset 18 reductions take their axes as initializers: those only they read go too
    used = {i for n in keep for i in n.input}
    orphans = {i for n in graph.node if n.output[0] in drop for i in n.input} - used
    inits = [i for i in graph.initializer if i.name not in orphans]
    outputs = [o for o in graph.output if o.name not in ends]
    for part, items in ((graph.node, keep), (graph.initializer, inits), (graph.output, outputs)):
        del part[:]
        part.extend(items)
    return derived


def _clip_bounds(node: onnx.NodeProto, consts: dict[str, onnx.TensorProto]
                 ) -> tuple[float, float] | None:
    """[low, high] of a Relu or a Clip whose bounds are constants (None: not constant)."""
    if node.op_type == "Relu":
        return 0.0, math.inf
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    bounds = [float(attrs.get("min", -math.inf)), float(attrs.get("max", math.inf))]
    for k, name in enumerate(node.input[1:3]):  # opset 11+: min and max are inputs
        if not name:
            continue
        value = onnx.numpy_helper.to_array(consts[name]) if name in consts else None
        if value is None or value.size != 1:
            return None
        bounds[k] = float(value.reshape(()))
    return bounds[0], bounds[1]


def _with_clamped(data: Any, derived: dict[str, tuple[str, float, float]]) -> Any:
    """ONNX Runtime's TensorsData with the ranges `_unobserve_clamps` left out, computed."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    ranges = dict(data.data)
    for out, (src, low, high) in derived.items():  # graph order: a clamp of a clamp works
        lo, hi = np.float32(low), np.float32(high)
        ranges[out] = TensorData(lowest=np.minimum(np.maximum(ranges[src].lowest, lo), hi),
                                 highest=np.minimum(np.maximum(ranges[src].highest, lo), hi))
    return TensorsData(data.calibration_method, ranges)


def _channel_axes_known(calibrator: Any) -> bool:
    """Whether every tensor the calibrator will reduce has a channel axis of a fixed size
    (rank 1 or more, axis 1 static when there is one): per-channel reductions need it, and
    one whose size followed the batch could not be stacked across a shorter last batch."""
    tensors, infos = calibrator.select_tensors_to_calibrate(calibrator.model)
    for name in tensors:
        info = infos.get(name)
        if info is None or not info.type.tensor_type.HasField("shape"):
            return False
        dims = info.type.tensor_type.shape.dim
        if not dims or (len(dims) > 1 and dims[1].dim_value <= 0):
            return False
    return True


SNAP_BITS = 6


def snap(value: np.ndarray, direction: int) -> np.ndarray:
    """A calibration range end moved outward (`direction` -1 for the low end, 1 for the high)
    to the nearest value with SNAP_BITS significant bits (at most 1.6% wider).

    Why: the ranges come from running the fp32 graph, and another CPU's kernels (AVX2, SSE,
    AVX-512) sum in another order: the same export on two x86 machines gave activation
    scales 1e-7 apart (MobileNet v1, ONNX Runtime 1.31, native AMD EPYC vs qemu Nehalem),
    so the artifact depended on the CPU that exported it. Snapped, two runs agree unless a
    range end falls within that difference (~1e-5 relative) of a grid step: a few in 10^4
    per range.
    A 1.6% wider range changes int8's rounding step by as much: far less than calibration's
    own sampling noise."""
    v = np.asarray(value, dtype=np.float32)
    mag = np.abs(v).astype(np.float64)
    out = np.zeros_like(mag)
    nz = mag > 0
    exp = np.floor(np.log2(mag[nz]))
    step = np.exp2(exp - (SNAP_BITS - 1))
    outward = np.sign(v[nz]) == direction  # moving away from zero, or toward it
    out[nz] = np.where(outward, np.ceil(mag[nz] / step), np.floor(mag[nz] / step)) * step
    return (np.sign(v) * out).astype(v.dtype)


def ort_method(name: str):  # noqa: ANN202
    """ONNX Runtime's CalibrationMethod of a method name (CALIB_METHODS)."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]
