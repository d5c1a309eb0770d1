"""Post-training static int8 with ONNX Runtime's quantizer: QDQ graphs, per-channel weights.

    pre = preprocess(fp32_proto)                          # quant_pre_process: shapes, fusions
    q = quantize(pre, reader, scheme, method="minmax", exclude=[...], cache=Path(...))

The scheme comes from the target recipe:
  CPU targets       uint8 asymmetric activations, int8 symmetric per-channel weights, int32
                    biases: the u8 x s8 kernels of x86/ARM (symmetric int8 activations ran
                    slower than fp32 in ONNX Runtime 1.31 on an Intel Xeon, AVX-512 VNNI).
                    The x86 recipes take a signed network input as int8, zero point 0
                    (`signed_inputs`): one tensor, which ONNX Runtime fuses as before.
                    On x86 without VNNI, weights take 7 bits (`weight_range`): the AVX2
                    kernel's int16 pair sums saturate with full-range weights.
  TensorRT targets  int8 symmetric activations and weights, zero points 0, weight scales per
                    output channel on axis 0, float biases: what TensorRT's explicit
                    quantization takes. `tensorrt_problems` checks such a graph offline.

Layers to keep in float are ranked by `layer_sqnr`: the signal-to-quantization-noise ratio of
each quantized layer's output in the int8 model against the fp32 one (the activations
collected and matched by ONNX Runtime's qdq_loss_debug; the ranking is ours).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgecnn.errors import EdgeCNNError
from edgecnn.export.calibration import calibrate, ort_method
from edgecnn.export.inputs import CalibrationReader
from edgecnn.export.onnx_io import batch_dynamic
from edgecnn.export.targets import CALIB_METHODS, Int8Scheme

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")  # the layers SQNR ranks and the guard may exclude


def preprocess(proto: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's quant_pre_process: shape inference and basic graph fusions, with
    HardSwish put back together (see _fuse_hardswish) and every node named."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp, "in.onnx"), Path(tmp, "out.onnx")
        onnx.save_model(proto, str(src))
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return _name_nodes(_fuse_hardswish(onnx.load(str(dst))))


def _fuse_hardswish(proto: onnx.ModelProto) -> onnx.ModelProto:
    """quant_pre_process's optimizer inlines HardSwish as x * HardSigmoid(x; 1/6, 1/2), the
    function ONNX defines it by. The quantizer quantizes neither op, so the pieces only cost
    time (OpenVINO 2026.4 ran MobileNet v3 small's inlined fp32 graph at 0.69x of the
    exported one on the 2-core AMD EPYC, measured before this pass existed). Each such pair
    becomes one HardSwish again (opset 14 and later), the op the exporter wrote."""
    if next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0) < 14:
        return proto
    g = proto.graph
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            readers.setdefault(t, []).append(n)
    fused: dict[int, onnx.NodeProto] = {}  # id(Mul) -> its HardSwish
    gone: set[int] = set()  # id(HardSigmoid)
    for n in g.node:
        if n.op_type != "HardSigmoid" or len(readers.get(n.output[0], [])) != 1:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if not (math.isclose(attrs.get("alpha", 0.2), 1 / 6, rel_tol=1e-5)
                and math.isclose(attrs.get("beta", 0.5), 0.5, rel_tol=1e-6)):
            continue
        (mul,) = readers[n.output[0]]
        if mul.op_type == "Mul" and sorted(mul.input) == sorted([n.input[0], n.output[0]]):
            fused[id(mul)] = onnx.helper.make_node("HardSwish", [n.input[0]], list(mul.output))
            gone.add(id(n))
    nodes = [fused.get(id(n), n) for n in g.node if id(n) not in gone]
    del g.node[:]
    g.node.extend(nodes)
    return proto


def _name_nodes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Names for the nodes quant_pre_process leaves unnamed (and the HardSwish nodes put back
    together): nodes_to_exclude takes names, so an unnamed node could never stay float. The
    name takes the module path of its input ('/features/features.0/features.0.0/
    HardSwish_3'), so a block keeps its activations."""
    taken = {n.name for n in proto.graph.node}
    for i, node in enumerate(proto.graph.node):
        if node.name:
            continue
        where = next((t.rsplit("/", 1)[0] for t in node.input if t.startswith("/")), "")
        name = f"{where}/{node.op_type}_{i}"
        while name in taken:
            name += "_"
        node.name = name
        taken.add(name)
    return proto


def weight_range(scheme: Int8Scheme) -> tuple[bool, str]:
    """(reduce the weight range?, why): the recipe's `weight_range`. x86 without VNNI runs
    u8 x s8 through VPMADDUBSW, which sums two u8*s8 products into a saturating int16: with
    weights up to 127 the sum reaches 64,770 and clips (LeNet-5 on digits, ONNX Runtime 1.31,
    AMD EPYC with AVX2 and no VNNI: 88.6% top-1 fused against 90.8% for the same file run as
    float Q/DQ ops); 7-bit weights cannot overflow (91.1% both ways). VNNI (VPDPBUSD) and
    ARM accumulate in int32. The exporting CPU has no say: the artifact is for the target."""
    if scheme.weight_range == "reduced":
        return True, "reduced: 7-bit weights (recipe: the target includes x86 CPUs without " \
                     "VNNI, whose AVX2 u8 x s8 kernel saturates with full-range weights)"
    return False, "full (recipe)"


def quantize(
    proto: onnx.ModelProto,
    reader: CalibrationReader,
    scheme: Int8Scheme,
    *,
    method: str = "minmax",
    exclude: list[str] | tuple[str, ...] = (),
    cache: Path | None = None,
) -> onnx.ModelProto:
    """A QDQ int8 model of `proto` (already preprocessed), calibrated on `reader`.

    `cache`: a calibration cache file for this method; ranges computed once are reused
    when only the excluded layers change (the float graph, hence the ranges, is the same).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise EdgeCNNError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, "
                           f"got {method!r}")
    symmetric = scheme.symmetric_activations
    extra: dict[str, object] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if scheme.tensorrt_checks:
        extra.update(QuantizeBias=False,  # TensorRT fuses float biases itself
                     QDQKeepRemovableActivations=True)  # its fusions need the ReLUs it sees
    reduced, _ = weight_range(scheme)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp, "in.onnx"), Path(tmp, "out.onnx")
        onnx.save_model(proto, str(src))
        cache = cache or Path(tmp, "calib.json")
        if not cache.exists():  # ranges from batches of 16 when the graph allows it
            dynamic = batch_dynamic(proto)
            if dynamic is not None and len(reader.x):
                onnx.save_model(dynamic, str(Path(tmp, "dynamic.onnx")))
                calibrate(Path(tmp, "dynamic.onnx"), CalibrationReader(reader.x, 16), method,
                          cache)
            else:
                calibrate(src, reader, method, cache)
        if scheme.signed_input and not symmetric:
            extra["TensorQuantOverrides"] = signed_inputs(proto, cache)
        quantize_static(
            str(src), str(dst), None, quant_format=QuantFormat.QDQ, per_channel=True,
            reduce_range=reduced,  # weights only: activations keep 8 bits
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=ort_method(method),
            nodes_to_exclude=list(exclude), extra_options=extra,
            calibration_cache_path=str(cache),
        )
        out = onnx.load(str(dst))
    out.ir_version = min(out.ir_version, proto.ir_version)
    return out


def signed_inputs(proto: onnx.ModelProto, cache: Path) -> dict[str, list[dict[str, object]]]:
    """ONNX Runtime's per-tensor overrides that quantize each network input whose calibrated
    range holds negative values as int8 symmetric (the recipe's `signed_input`)."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import load_tensors_data

    ranges = load_tensors_data(str(cache))
    consts = {i.name for i in proto.graph.initializer}
    return {i.name: [{"quant_type": QuantType.QInt8, "symmetric": True}]
            for i in proto.graph.input
            if i.name not in consts and i.name in ranges
            and float(np.min(ranges[i.name].lowest)) < 0}


@contextlib.contextmanager
def _quiet():
    """The quantizer logs advice at WARNING level and prints progress; not our user's concern."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------------------------
# Sensitivity: which layers lose the most to int8.

@dataclass
class LayerSQNR:
    node: str  # node name in the fp32 graph (what nodes_to_exclude takes)
    op: str
    sqnr_db: float  # 10 log10(signal / noise) of its output, int8 vs fp32
    added_noise: float  # noise/signal it adds beyond the worst of its inputs (the ranking key)


def quantized_nodes(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in proto.graph.node if n.op_type in QUANTIZED_OPS and n.name]


def layer_sqnr(fp32: onnx.ModelProto, int8: onnx.ModelProto, x: np.ndarray) -> list[LayerSQNR]:
    """SQNR of every Conv/Gemm output as the next layer sees it (after its ReLU and its Q/DQ
    pair), int8 model vs fp32 model, on inputs `x`, most harmful first. Noise accumulates
    through the network, so a layer is ranked by the noise it adds (its noise-to-signal
    ratio minus the worst of the layers feeding it), not by its raw SQNR. Ratios are per
    channel, averaged (see `_noise_to_signal`).
    """
    from onnxruntime.quantization.qdq_loss_debug import create_activation_matching

    nodes = quantized_nodes(fp32)
    observed = {n.name: _observed_tensor(fp32, n) for n in nodes}
    ref = _activations(fp32, x, [*QUANTIZED_OPS, "Relu", "Clip"])
    qdq = _activations(int8, x, ["QuantizeLinear", "DequantizeLinear", *QUANTIZED_OPS,
                                 "Relu", "Clip"])
    # tensor -> {"float": fp32 model's, "pre_qdq": int8 model's, "post_qdq": after its DQ}
    matching = create_activation_matching(qdq, ref)
    shapes = _shapes(fp32)  # qdq_loss_debug flattens what it saves: per-channel needs (N, C..)
    nsr = {}
    for name, t in observed.items():
        pair = matching.get(t, {})
        got = pair.get("post_qdq", qdq.get(t))  # an output left unquantized: as it is
        if t in ref and got is not None and t in shapes:
            tail = shapes[t][1:]
            nsr[name] = _noise_to_signal(*(np.concatenate([a.reshape(-1, *tail) for a in v])
                                           for v in (ref[t], got)))
    producer = _producers(fp32)
    by_output = {n.output[0]: n.name for n in nodes}
    rows = []
    for node in nodes:
        if node.name not in nsr:
            continue  # fused away in the int8 graph: nothing to compare
        upstream = [nsr[by_output[t]] for t in _upstream_quantized(node, producer, set(by_output))
                    if by_output[t] in nsr]
        added = nsr[node.name] - max(upstream, default=0.0)
        sqnr = 10 * math.log10(1.0 / nsr[node.name]) if nsr[node.name] > 0 else float("inf")
        rows.append(LayerSQNR(node.name, node.op_type, sqnr, added))
    return sorted(rows, key=lambda r: -r.added_noise)


def _observed_tensor(proto: onnx.ModelProto, node: onnx.NodeProto) -> str:
    """The layer's output after a ReLU/Clip that only it feeds (the quantizer folds those)."""
    out = node.output[0]
    consumers = [n for n in proto.graph.node if out in n.input]
    if len(consumers) == 1 and consumers[0].op_type in ("Relu", "Clip"):
        return consumers[0].output[0]
    return out


def _noise_to_signal(ref: np.ndarray, got: np.ndarray) -> float:
    """Noise power over signal power, averaged over channels (axis 1): one channel with a
    huge range must not hide that the quantization step it forces wipes out the others."""
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    axes = tuple(i for i in range(ref.ndim) if i != 1) if ref.ndim >= 3 else None
    signal = np.mean(ref ** 2, axis=axes) + 1e-30
    noise = np.mean((ref - got) ** 2, axis=axes)
    return float(np.mean(noise / signal))


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes of the graph's tensors (the batch dimension may be symbolic: 0)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    graph = inferred.graph
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
            for v in (*graph.value_info, *graph.output, *graph.input)
            if v.type.tensor_type.HasField("shape")}


def _activations(proto: onnx.ModelProto, x: np.ndarray, op_types: list[str]
                 ) -> dict[str, list[np.ndarray]]:
    """Every float input and output of the nodes of `op_types`, per batch, through ONNX
    Runtime's qdq_loss_debug (the model augmented with those tensors as outputs, run with
    graph optimizations off so the Q/DQ pairs are what runs). Batches of 32 when the
    graph's batch can be freed."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        modify_model_output_intermediate_tensors,
    )

    dynamic = batch_dynamic(proto)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, augmented = Path(tmp, "model.onnx"), Path(tmp, "augmented.onnx")
        onnx.save_model(dynamic or proto, str(src))
        modify_model_output_intermediate_tensors(src, augmented, op_types_for_saving=op_types)
        return collect_activations(str(augmented),
                                   CalibrationReader(x, 32 if dynamic is not None else 1))


def _producers(proto: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: n for n in proto.graph.node for out in n.output}


def _upstream_quantized(node: onnx.NodeProto, producer: dict[str, onnx.NodeProto],
                        quantized_outputs: set[str]) -> list[str]:
    """The nearest Conv/Gemm outputs feeding `node` through non-quantized ops (ReLU, pool,
    Concat, Add...)."""
    found, stack, seen = [], list(node.input), set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor not in producer:
            continue
        seen.add(tensor)
        if tensor in quantized_outputs:
            found.append(tensor)
        else:
            stack.extend(producer[tensor].input)
    return found


# --------------------------------------------------------------------------------------------
# TensorRT's explicit quantization, checked offline.

def tensorrt_problems(proto: onnx.ModelProto, allow_float: list[str] | tuple[str, ...] = ()
                      ) -> list[str]:
    """What TensorRT's explicit quantization would refuse or run in float, one line each:
    every Conv/Gemm input (activation and weight) comes from a DequantizeLinear, weight scales
    are per output channel on axis 0, every zero point is 0, residual Add inputs quantized.
    `allow_float`: layers the accuracy guard kept in float on purpose (TensorRT runs them in
    fp16/fp32 between int8 layers)."""
    producer = _producers(proto)
    allowed = set(allow_float)
    inits = {t.name: t for t in proto.graph.initializer}
    problems: list[str] = []
    for n in proto.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if len(n.input) > 2 and n.input[2] in inits:
                zp = onnx.numpy_helper.to_array(inits[n.input[2]])
                if np.any(zp != 0):
                    problems.append(f"{n.name}: zero point is not 0")
            if len(n.input) > 2 and n.input[2] and n.input[2] not in inits:
                problems.append(f"{n.name}: zero point is not a constant")
        elif n.op_type in ("Conv", "Gemm") and n.name not in allowed:
            for role, tensor in (("input", n.input[0]), ("weight", n.input[1])):
                dq = producer.get(tensor)
                if dq is None or dq.op_type != "DequantizeLinear":
                    problems.append(f"{n.name}: {role} is not behind a Q/DQ pair")
                    continue
                if role == "weight":
                    problems.extend(_weight_scale_problems(n, dq, inits))
        elif n.op_type == "Add" and not _is_bias_add(n, inits):
            for tensor in n.input:
                src = producer.get(tensor)
                if src is None or src.op_type != "DequantizeLinear":
                    problems.append(f"{n.name}: residual Add input {tensor} is not quantized")
    return problems


def _weight_scale_problems(node: onnx.NodeProto, dq: onnx.NodeProto,
                           inits: dict[str, onnx.TensorProto]) -> list[str]:
    scale = inits.get(dq.input[1])
    weight = inits.get(dq.input[0])
    if scale is None or weight is None:
        return [f"{node.name}: weight scale or weight is not a constant"]
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    channels = weight.dims[0] if node.op_type == "Conv" else None
    n_scales = int(np.prod(scale.dims)) if scale.dims else 1
    if node.op_type == "Conv" and (axis != 0 or n_scales != channels):
        return [f"{node.name}: weight scales are not per output channel on axis 0"]
    return []


def _is_bias_add(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    return any(t in inits for t in node.input)
