"""The machine's limits and a per-layer roofline: how close a model runs to what the hardware
allows, for fp32 and int8 alike.

    peaks = measure_peaks(threads=2)        # fp32 GEMM, int8 GEMM (ORT QGemm), copy bandwidth
    bound = layer_bounds("model.int8.onnx", peaks)   # per layer kind, and the total
    roofline_pct = 100 * bound["total"]["bound_ms"] / p50_ms

A layer's time cannot be below max(MACs / compute peak, bytes moved / bandwidth) for its
precision: depthwise convolutions are memory-bound (few MACs per byte), pointwise and dense
ones compute-bound. The model's roofline is that bound summed over its layers; "roofline %"
is that sum over the measured latency. Peaks are measured at the run's thread count:
  fp32   numpy's BLAS matrix product (OpenBLAS/MKL), threadpoolctl pinning its threads;
  int8   ONNX Runtime's MatMulInteger, uint8 x int8, run by OrtRunner (its QGEMM: VNNI where it is,
         AVX2's VPMADDUBSW otherwise), at the session's intra-op threads;
  memory an array copy (read + write bytes), split over the threads: 128 MB for DRAM, and
         a quarter of the last-level cache for the layers whose bytes fit in that cache
         (at batch 1, most of a mobile network's: DRAM's rate alone put ONNX Runtime's fp32
         MobileNet 0.5 at 108% of its "bound" at 2 threads on the AMD EPYC).
The fp32 peak is a 1024^3 product, and at several threads the better of that and a 2048^3
one: at 2 threads the smaller one ran below the rate ONNX Runtime's own pointwise
convolutions reached.
Bytes per layer come from the tensor shapes: input and output activations and the weights
(4 bytes an element in fp32, 1 in int8, biases 4). Needs the onnx package for shape inference
(bench without it reports no roofline).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.machine import best_time, peak_gmacs
from edgecnn.host import last_level_cache_bytes

KINDS = ("pointwise", "depthwise", "dense", "other")
_MAC_OPS = ("Conv", "Gemm", "MatMul")
# No kernel of their own in ONNX Runtime: fused into the layer before, or a view.
_FREE = ("QuantizeLinear", "DequantizeLinear", "Relu", "Clip", "Reshape", "Flatten",
         "Squeeze", "Unsqueeze", "Shape", "Identity", "Constant")
# Run inside the layer before them once ONNX Runtime has fused its graph.
_FOLLOWERS = ("Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "LeakyRelu",
              "QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class Peaks:
    threads: int
    fp32_gmacs: float
    int8_gmacs: float | None  # None: onnx or onnxruntime not installed
    bandwidth_gbs: float  # DRAM: a 128 MB copy
    cache_bandwidth_gbs: float | None = None  # a copy within the last-level cache
    cache_bytes: int | None = None  # its size: layers moving no more use its rate

    def bandwidth_for(self, moved: float) -> float:
        """The memory roof of a layer that moves `moved` bytes."""
        if self.cache_bandwidth_gbs and self.cache_bytes and moved <= self.cache_bytes:
            return self.cache_bandwidth_gbs
        return self.bandwidth_gbs


def measure_peaks(threads: int) -> Peaks:
    cache = cache_bandwidth_gbs(threads)
    fp32 = peak_gmacs(threads)
    if threads > 1:  # a 1024^3 product is too small to keep several threads busy
        fp32 = max(fp32, peak_gmacs(threads, n=2048, repeats=3))
    return Peaks(threads, fp32, int8_peak_gmacs(threads), bandwidth_gbs(threads),
                 *(cache or (None, None)))


def int8_peak_gmacs(threads: int, n: int = 1024, repeats: int = 10) -> float | None:
    """ONNX Runtime's MatMulInteger (uint8 x int8 -> int32), GMAC/s, best of `repeats`, run
    by the runtime's OrtRunner at `threads` intra-op threads.

    The runner takes a float image-shaped input, so the uint8 matrix is made in the graph
    from one float row (QuantizeLinear, then Expand to n rows: integer products take the same
    time whatever the values). Measured against a session fed the uint8 matrix, interleaved
    (15 rounds, best of 5 calls each; 2-core AMD EPYC shared with other jobs): best 93.4 vs
    93.9 GMAC/s at 1 thread, 59.4 vs 59.4 at 2. Quantizing a whole n x n float input in the
    graph instead read 2-11% lower at 1 thread and 14-34% at 2."""
    try:
        from onnx import TensorProto, helper, numpy_helper

        from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    except ImportError:
        return None
    b = np.random.default_rng(1).integers(-64, 64, (n, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["row"]),
         helper.make_node("Expand", ["row", "shape"], ["a"]),
         helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "int8_peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, n])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, n, n])],
        [numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
         numpy_helper.from_array(np.array(128, np.uint8), "zero"),
         numpy_helper.from_array(np.array([1, 1, n, n], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = np.random.default_rng(0).standard_normal((1, 1, 1, n), dtype=np.float32) * 3
    runner = OrtRunner(model.SerializeToString(), "cpu",
                       OrtOptions(threads=threads, inter_op_threads=1))
    try:
        with runner:
            best = best_time(lambda: runner.infer(x), repeats)
    except ImportError:  # no onnxruntime: the runner imports it when activated
        return None
    return n ** 3 / best / 1e9


def bandwidth_gbs(threads: int, mb: float = 128, repeats: int = 3) -> float:
    """Copy rate of a `mb` MB array, GB/s of bytes read plus written, split over threads
    (numpy releases the GIL while it copies), best of `repeats`; each thread copies its
    part enough times to move at least 256 MB, so starting threads costs little."""
    src = np.ones(int(mb * 2**20) // 8, dtype=np.float64)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(len(src)), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]
    times = max(1, int(128 / mb))

    def copy_part(lo: int, hi: int) -> None:
        for _ in range(times):
            np.copyto(dst[lo:hi], src[lo:hi])

    def copy() -> None:
        workers = [threading.Thread(target=copy_part, args=b) for b in bounds]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    best = best_time(copy, repeats, warmup=1)
    return 2 * src.nbytes * times / best / 1e9


def cache_bandwidth_gbs(threads: int) -> tuple[float, int] | None:
    """(copy rate in GB/s, cache bytes) with source and copy in a quarter of the last-level
    cache each: the roof for layers whose bytes fit there (at batch 1 most of a mobile
    network's do), which DRAM's rate would set too low. None when the cache size is
    unknown."""
    size = last_level_cache_bytes()
    if not size:
        return None
    return bandwidth_gbs(threads, mb=size / 4 / 2**20, repeats=5), size


def layer_bounds(path: str | Path, peaks: Peaks, batch: int = 1) -> dict[str, dict[str, float]]:
    """Per layer kind (pointwise, depthwise, dense, other) and in total: MACs, bytes moved
    and the roofline time (ms) at `batch`. A Conv/Gemm whose weight comes from a
    DequantizeLinear is an int8 layer (int8 peak, 1-byte tensors)."""
    g, shapes, inits, producer = _graph(path)
    out = {k: {"macs": 0.0, "bytes": 0.0, "bound_ms": 0.0, "layers": 0} for k in KINDS}
    for node in g.node:
        if node.op_type in _FREE:
            continue
        weight = _weight(node, producer, inits)
        int8 = weight is not None and producer.get(node.input[1]) is not None \
            and producer[node.input[1]].op_type == "DequantizeLinear"
        size = 1 if int8 else 4
        kind, macs = _kind_and_macs(node, shapes, weight)
        tensors = (node.input[0], *node.output) if weight is not None else \
            (*node.input, *node.output)
        acts = [t for t in tensors if t in shapes and t not in inits]
        moved = sum(_elements(shapes[t]) for t in acts) * size * batch
        if weight is not None:
            moved += _elements(weight) * size
            if len(node.input) > 2 and node.input[2]:
                moved += _elements(shapes.get(node.input[2], [0])) * 4
        macs *= batch
        peak = (peaks.int8_gmacs or peaks.fp32_gmacs) if int8 else peaks.fp32_gmacs
        bound = max(macs / (peak * 1e9), moved / (peaks.bandwidth_for(moved) * 1e9)) * 1e3
        row = out[kind]
        row["macs"] += macs
        row["bytes"] += moved
        row["bound_ms"] += bound
        row["layers"] += 1
    out["total"] = {k: sum(out[kind][k] for kind in KINDS) for k in
                    ("macs", "bytes", "bound_ms", "layers")}
    return out


def layer_kinds(path: str | Path) -> dict[str, tuple[str, str, float]]:
    """name -> (layer, kind, MACs) for each Conv/Gemm/MatMul layer of the file, keyed by its
    node name and by every tensor from its output on through the activations and Q/DQ nodes
    that follow it alone. ONNX Runtime's profiler names a fused node after one of those: an
    NCHWc convolution after its ReLU's output ('..._output_0_nchwc'), a QLinearConv after
    the Conv ('.../Conv_token_12'); see profiled_kind."""
    g, shapes, inits, producer = _graph(path)
    readers: dict[str, list[Any]] = {}
    for node in g.node:
        for t in node.input:
            readers.setdefault(t, []).append(node)
    out: dict[str, tuple[str, str, float]] = {}
    for node in g.node:
        weight = _weight(node, producer, inits)
        if weight is None:
            continue
        entry = (node.name, *_kind_and_macs(node, shapes, weight))
        out[node.name] = entry
        tensors = list(node.output)
        while tensors:
            t = tensors.pop()
            out[t] = entry
            after = readers.get(t, [])
            if len(after) == 1 and after[0].op_type in _FOLLOWERS:
                out[after[0].name] = entry
                tensors.extend(after[0].output)
    return out


def profiled_kind(kinds: dict[str, tuple[str, str, float]], event: str) -> tuple[str, str, float]:
    """The (layer, kind, MACs) of one of ONNX Runtime's profiler events
    ('<node>_kernel_time'); ('', "other", 0) for nodes that are no layer of layer_kinds."""
    name = event.removesuffix("_kernel_time")
    for candidate in (name, name.removesuffix("_nchwc"), re.sub(r"_token_\d+$", "", name)):
        if candidate in kinds:
            return kinds[candidate]
    return "", "other", 0.0


def _graph(path: str | Path) -> tuple[Any, dict[str, list[int]], dict[str, list[int]],
                                      dict[str, Any]]:
    """(graph, tensor shapes, initializer shapes, tensor -> producing node)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    g = model.graph
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
              for v in (*g.value_info, *g.input, *g.output)}
    inits = {t.name: list(t.dims) for t in g.initializer}
    shapes.update(inits)
    return g, shapes, inits, {o: n for n in g.node for o in n.output}


def _weight(node: Any, producer: dict[str, Any], inits: dict[str, list[int]]) -> list[int] | None:
    """The weight's shape of a Conv/Gemm/MatMul (through its DequantizeLinear), else None."""
    if node.op_type not in _MAC_OPS or len(node.input) < 2:
        return None
    name = node.input[1]
    if name not in inits and name in producer and producer[name].op_type == "DequantizeLinear":
        name = producer[name].input[0]
    return inits.get(name)


def _kind_and_macs(node: Any, shapes: dict[str, list[int]], weight: list[int] | None
                   ) -> tuple[str, float]:
    if weight is None:
        return "other", 0.0
    out = shapes.get(node.output[0])
    if not out:
        return "other", 0.0
    if node.op_type == "Conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        in_per_group, spatial = weight[1], weight[2:]
        macs = _elements(out) / out[0] * in_per_group * _elements(spatial)
        if group > 1 and in_per_group == 1:
            return "depthwise", macs
        return ("pointwise" if all(k == 1 for k in spatial) and group == 1 else "dense"), macs
    k = weight[0] if node.op_type == "MatMul" else (
        weight[1] if any(a.name == "transB" and a.i for a in node.attribute) else weight[0])
    return "dense", _elements(out) / out[0] * k


def _elements(shape: list[int]) -> float:
    return float(np.prod(shape)) if shape else 1.0


__all__ = ["KINDS", "Peaks", "bandwidth_gbs", "cache_bandwidth_gbs", "int8_peak_gmacs",
           "layer_bounds", "layer_kinds", "measure_peaks", "profiled_kind"]

