"""Latency-aware mixed precision (export/mixed.py): blocks, boundary Q/DQ placement, the
profiler's per-block times (the real profiler, in one test whose assertions hold at any
speed), and the search's choices under injected costs (tests/export_helpers.CostTimer).
Real quantizer and real ONNX Runtime sessions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def v3_small():  # noqa: ANN201
    """MobileNet v3 small at 32 px, preprocessed for quantization, and calibration inputs:
    hard-swish and squeeze-excitation in every block; and the exported fp32 graph."""
    return _v3_small()


def _v3_small() -> tuple:
    from edgecnn.export.onnx_io import simplify, to_onnx_proto
    from edgecnn.export.quantize import preprocess
    from edgecnn.registry import create_model

    model = create_model("mobilenet_v3_small", num_classes=10).eval()
    fp32 = simplify(to_onnx_proto(model, torch.zeros(1, 3, 32, 32)))
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)
    return preprocess(fp32), x, fp32


def test_preprocess_keeps_hardswish_whole(v3_small) -> None:  # noqa: ANN001
    """quant_pre_process inlines HardSwish into HardSigmoid and Mul; preprocess puts every
    one back, and the graph computes what the exported one does."""
    import onnxruntime as ort

    pre, x, fp32 = v3_small
    count = [[n.op_type for n in g.graph.node].count("HardSwish") for g in (pre, fp32)]
    assert count == [19, 19]  # MobileNet v3 small's hard-swish activations, all kept
    assert all(n.name for n in pre.graph.node)
    y = [ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
         .run(None, {"input": x[:1]})[0] for g in (pre, fp32)]
    np.testing.assert_allclose(y[0], y[1], atol=1e-5)


def test_block_names() -> None:
    from edgecnn.export.mixed import block_of

    assert block_of("/features/features.4/block/block.0/block.0.0/Conv") == "/features/features.4"
    assert block_of("/features/features.0/Conv") == "/features/features.0"
    assert block_of("/conv1/Conv") == "/conv1"
    assert block_of("/Flatten") == "/Flatten"
    assert block_of("conv_7") == "conv_7"  # a foreign file's flat names: one block each


def test_float_blocks_leave_no_pointless_qdq_pair(v3_small) -> None:  # noqa: ANN001
    """Two blocks kept float: their inlined hard-swish and SE stay float with them, and Q/DQ
    pairs sit only where an int8 block meets a float one."""
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.mixed import graph_blocks, pointless_pairs
    from edgecnn.export.quantize import quantize
    from edgecnn.export.targets import load_target

    pre, x, _ = v3_small
    blocks = graph_blocks(pre)
    assert all(n.name for n in pre.graph.node), "every node can be excluded by name"
    floats = blocks["/features/features.1"] + blocks["/features/features.4"]
    q = quantize(pre, CalibrationReader(x), load_target("cpu-x86").int8, exclude=floats)
    assert pointless_pairs(q, floats) == []
    by_name = {n.name: n for n in q.graph.node}
    produced_by_dq = {o for n in q.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for name in floats:  # float convs read float weights
        node = by_name[name]
        if node.op_type == "Conv":
            assert node.input[1] not in produced_by_dq
    int8_convs = [n for n in q.graph.node if n.op_type == "Conv" and n.name not in floats]
    assert int8_convs and all(n.input[1] in produced_by_dq for n in int8_convs)


def test_search_profiles_blocks_and_keeps_its_fastest_profile(v3_small) -> None:  # noqa: ANN001
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.mixed import MeasuredTimer, MixedConfig, search_blocks
    from edgecnn.export.quantize import quantize
    from edgecnn.export.targets import load_target

    pre, x, _ = v3_small
    scheme, reader = load_target("cpu-x86").int8, CalibrationReader(x)
    made = []

    def make(exclude: list[str]):  # noqa: ANN202
        made.append(len(exclude))
        return quantize(pre, reader, scheme, exclude=exclude)

    config = MixedConfig(profile_runs=4, refine_rounds=1)
    result = search_blocks(pre, make, MeasuredTimer((1, 3, 32, 32), config), config)
    rec = result.record
    assert rec["profiled_sessions"] <= 6 and len(made) <= 3  # bounded: 2 + refine_rounds
    assert {b["block"] for b in rec["blocks"]} >= {"/features/features.1",
                                                   "/classifier/classifier.0"}
    assert all(b["fp32_ms"] > 0 for b in rec["blocks"] if b["block"].startswith("/features"))
    profiled = rec["candidates_profiled_ms"]
    assert profiled[rec["chosen"]] == min(v for k, v in profiled.items() if k != "fp32")
    floats = {b["block"] for b in rec["blocks"] if b["precision"] == "float"}
    assert set(rec["float_blocks"]) == floats
    assert set(result.float_nodes) == {n.name for n in pre.graph.node
                                       if any(n.name in b.nodes for b in result.blocks
                                              if b.name in floats)}


def test_no_int8_block_faster_gives_the_reference_graph_itself(v3_small) -> None:  # noqa: ANN001
    """Int8 convolutions injected at twice fp32's cost (CostTimer): no block pays, and the
    search's choice is the fp32 reference graph itself, every block float."""
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.mixed import search_blocks
    from edgecnn.export.quantize import quantize
    from edgecnn.export.targets import load_target
    from tests.export_helpers import CostTimer

    pre, x, fp32 = v3_small
    scheme, reader = load_target("cpu-x86").int8, CalibrationReader(x)
    result = search_blocks(pre, lambda exclude: quantize(pre, reader, scheme, exclude=exclude),
                           CostTimer(2.0), reference=fp32)
    assert result.record["chosen"] == "float"
    assert result.proto is fp32  # model.onnx's graph, not the preprocessed one
    assert {b.precision for b in result.blocks} == {"float"}
    assert len(result.float_nodes) == sum(len(b.nodes) for b in result.blocks)


def test_search_keeps_int8_where_it_pays(v3_small) -> None:  # noqa: ANN001
    """Int8 convolutions at half fp32's cost: every block int8, one profiled pair."""
    from edgecnn.export.inputs import CalibrationReader
    from edgecnn.export.mixed import search_blocks
    from edgecnn.export.quantize import quantize
    from edgecnn.export.targets import load_target
    from tests.export_helpers import CostTimer

    pre, x, fp32 = v3_small
    scheme, reader = load_target("cpu-x86").int8, CalibrationReader(x)
    timer = CostTimer(0.5)
    result = search_blocks(pre, lambda exclude: quantize(pre, reader, scheme, exclude=exclude),
                           timer, reference=fp32)
    assert result.record["chosen"] == "int8" and result.float_nodes == []
    assert timer.calls == ["profile"]
