"""Sibling convolutions merged (edgecnn/export/merge.py) and tune's merged candidate: the
merged graph computes what the int8 file does, groups that would not are left alone, and
tune takes the merge only where the device's profile and timing say so (injected here, so
the choice is the same on any machine; one test runs this machine's real profilers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgecnn.errors import EdgeCNNError
from tests.export_helpers import CostTimer

pytest.importorskip("onnxruntime")

RUNTIMES = ("onnxruntime", "openvino")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SqueezeNet 1.1 at 64 px: eight fire modules, each a Concat of a 1x1 and a 3x3
    convolution of the squeeze output (random calibration)."""
    from edgecnn.export import ExportSpec, Int8Spec, ZooSource, export

    out = tmp_path_factory.mktemp("merge") / "sq"
    export(ExportSpec(ZooSource("squeezenet1_1", resolution=64, num_classes=10),
                      int8=Int8Spec("random", calib_samples=8, timer=CostTimer(0.5)),
                      output=str(out)))
    return out


@pytest.fixture()
def artifact(exported: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "a"
    shutil.copytree(exported, copy)
    return copy


def _int8(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path / "model.int8.onnx"))


def _logits(path: Path, runtime: str, x: np.ndarray) -> np.ndarray:
    from edgecnn.runtime.loader import installed, load

    if not installed(runtime):
        pytest.skip(f"{runtime} is not installed")
    with load(path, runtime=runtime, device="cpu", threads=1) as model:
        return np.stack([model.runner.infer(xi[None]) for xi in x])


def _output_step(path: Path) -> float:
    from edgecnn.tune.run import _output_step as step

    return step(path)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_merged_graph_computes_what_the_int8_file_does(exported: Path, runtime: str,
                                                         tmp_path: Path) -> None:
    from edgecnn.export.merge import merge, sibling_groups

    int8 = _int8(exported)
    groups = sibling_groups(int8)
    assert len(groups) == 8 and all(len(g.convs) == 2 for g in groups)
    merged = merge(int8, groups)
    onnx.checker.check_model(merged)
    ops = [n.op_type for n in merged.graph.node]
    assert ops.count("Concat") == 0 and ops.count("Conv") == 26 - 8
    onnx.save_model(merged, str(tmp_path / "merged.onnx"))
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64), dtype=np.float32) * 2
    want = _logits(exported / "model.int8.onnx", runtime, x)
    got = _logits(tmp_path / "merged.onnx", runtime, x)
    # the same integers: at most one step of the logits' grid (a misplaced kernel, pad or
    # channel moves them by many; 1x1 kernels padded at a corner instead of the centre did)
    assert np.abs(got - want).max() <= 1.01 * _output_step(exported / "model.int8.onnx")
    assert (got.argmax(1) == want.argmax(1)).all()


def test_groups_that_would_compute_otherwise_are_left_alone(exported: Path) -> None:
    from edgecnn.export.merge import merge, sibling_groups

    int8 = _int8(exported)
    first = sibling_groups(int8)[0]
    nodes = {n.name: n for n in int8.graph.node}
    branch_q = next(n for n in int8.graph.node if n.op_type == "QuantizeLinear"
                    and n.input[0] == nodes[first.convs[0]].output[0])
    # 1. a branch quantized at another scale than the Concat's: rounding once after the
    # Concat would not be what rounding the branch did
    other = onnx.ModelProto()
    other.CopyFrom(int8)
    q = next(n for n in other.graph.node if n.name == branch_q.name)
    scale = numpy_helper.to_array(next(t for t in other.graph.initializer
                                       if t.name == q.input[1]))
    other.graph.initializer.append(numpy_helper.from_array(scale * 2, "doubled_scale"))
    q.input[1] = "doubled_scale"
    assert first.concat not in {g.concat for g in sibling_groups(other)}
    assert len(sibling_groups(other)) == 7
    # 2. a branch's int8 output read by another node too (a graph output here)
    read = onnx.ModelProto()
    read.CopyFrom(int8)
    read.graph.output.append(onnx.helper.make_tensor_value_info(branch_q.output[0],
                                                                onnx.TensorProto.UINT8, None))
    assert first.concat not in {g.concat for g in sibling_groups(read)}
    # 3. merging none changes nothing
    assert [n.name for n in merge(int8, []).graph.node] == [n.name for n in int8.graph.node]


def test_choose_merges_takes_the_groups_that_profile_faster_merged() -> None:
    from edgecnn.export.merge import Group, choose_merges

    a = Group("/features/features.3/Concat", ("/features/features.3/e1/Conv",
                                              "/features/features.3/e3/Conv"))
    b = Group("/features/features.6/Concat", ("/features/features.6/e1/Conv",
                                              "/features/features.6/e3/Conv"))
    unmerged = {"/features/features.3": 0.08, "/features/features.6": 0.05}
    merged = {"/features/features.3": 0.05, "/features/features.6": 0.06}
    assert choose_merges([a, b], unmerged, merged) == [a]
    assert choose_merges([a, b], merged, unmerged) == [b]
    # within the margin (2% faster merged): a near-tie, left as it is
    assert choose_merges([a], {"/features/features.3": 0.100},
                         {"/features/features.3": 0.098}) == []


class Profiled:
    """Block profiles from CostTimer (a merged group costs one conv instead of two, so it
    profiles faster), or their opposite with `merged_slower`; whole-file times from `ms`."""

    def __init__(self, ms: dict[str, float], merged_slower: bool = False) -> None:
        self.ms, self.merged_slower = ms, merged_slower
        self.costs = CostTimer(0.5)
        self.timed: list[tuple[str, str]] = []

    def profile(self, graphs, blocks, runtime="onnxruntime"):  # noqa: ANN001, ANN201
        out = self.costs.profile(graphs, blocks)
        concats = [sum(n.op_type == "Concat" for n in g.graph.node) for g in graphs]
        merge_profile = len(graphs) == 2 and concats[1] < concats[0]  # [int8, every merged]
        return out[::-1] if self.merged_slower and merge_profile else out

    def time(self, cases):  # noqa: ANN001, ANN201
        self.timed = list(cases)
        base = {**self.ms, "int8_again": self.ms["int8"]}
        return {(name, rt): base[name] for name, rt in cases}


def _tune(path: Path, measure: Profiled):  # noqa: ANN202
    from edgecnn.tune.run import TuneSpec, tune

    return tune(TuneSpec(str(path), threads=1, runtime="onnxruntime", measure=measure))


def test_tune_records_and_deploys_the_merged_graph_when_it_is_faster(artifact: Path) -> None:
    from edgecnn.runtime import load

    result = _tune(artifact, Profiled({"int8": 1.0, "float": 1.5, "placement": 1.1,
                                       "merged": 0.9}))
    rec = result.record
    assert result.choice.candidate == "merged" and rec["file"].startswith("model.int8.tuned-")
    assert len(rec["merge"]["onnxruntime"]["in_merged_file"]) == 8
    assert rec["candidates_ms"]["merged onnxruntime"] == 0.9
    tuned = onnx.load(str(artifact / rec["file"]))
    assert not any(n.op_type == "Concat" for n in tuned.graph.node)
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
    with load(artifact) as model:  # the tuning that fits this machine
        assert Path(model.path).name == rec["file"]
    want = _logits(artifact / "model.int8.onnx", "onnxruntime", x)
    got = _logits(artifact / rec["file"], "onnxruntime", x)
    assert np.abs(got - want).max() <= 1.01 * _output_step(artifact / "model.int8.onnx")


def test_no_group_faster_merged_means_no_merged_candidate(artifact: Path) -> None:
    measure = Profiled({"int8": 1.0, "float": 1.5, "placement": 1.1, "merged": 0.5},
                       merged_slower=True)
    result = _tune(artifact, measure)
    assert not any(name == "merged" for name, _ in measure.timed)
    assert result.record["merge"]["onnxruntime"]["in_merged_file"] == []
    assert result.choice.candidate != "merged"


def test_a_merged_graph_that_computes_otherwise_is_refused(exported: Path, tmp_path: Path
                                                           ) -> None:
    from edgecnn.export.merge import merge, sibling_groups
    from edgecnn.tune.run import _verify

    int8 = _int8(exported)
    merged = merge(int8, sibling_groups(int8)[:1])
    right = tmp_path / "right.onnx"
    onnx.save_model(merged, str(right))
    _verify(right, "onnxruntime", 1, same_as=exported / "model.int8.onnx")  # passes
    weight = next(t for t in merged.graph.initializer if t.name.endswith("_conv.weight_quantized"))
    w = numpy_helper.to_array(weight).copy()
    ones = ~np.any(w[:, :, [0, 0, 2, 2], [0, 2, 0, 2]], axis=(1, 2))  # the padded 1x1 kernels
    assert 0 < ones.sum() < len(w)
    w[ones, :, 0, 0], w[ones, :, 1, 1] = w[ones, :, 1, 1], 0  # moved to a corner
    weight.CopyFrom(numpy_helper.from_array(w, weight.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save_model(merged, str(wrong))
    with pytest.raises(EdgeCNNError, match="differ from model.int8.onnx"):
        _verify(wrong, "onnxruntime", 1, same_as=exported / "model.int8.onnx")


def test_the_real_profilers_decide_each_group(artifact: Path) -> None:
    """This machine's profilers: which groups pay depends on the machine, so only the
    record's completeness is checked, in every installed CPU runtime."""
    from edgecnn.tune.run import MeasuredOnThisMachine, TuneSpec, tune

    result = tune(TuneSpec(str(artifact), threads=1, retries=0,
                           measure=MeasuredOnThisMachine((1, 3, 64, 64), 1, iters=8, rounds=2,
                                                         ov_profile_runs=8)))
    rec = result.record
    for runtime, merge in rec["merge"].items():
        assert merge["groups"] == 8 and len(merge["profiled_ms"]) == 8
        assert all(p["unmerged"] > 0 and p["merged"] > 0
                   for p in merge["profiled_ms"].values()), runtime
        assert "refused" not in merge, merge.get("refused")  # it ran and computed the same
        timed = f"merged {runtime}" in rec["candidates_ms"]
        assert timed == bool(merge["in_merged_file"])
    tuning = json.loads((artifact / "tuning.json").read_text())
    assert len(tuning["devices"]) == 1


# --- the matcher on small graphs built here: what it merges computes the same, what would
# not is left alone (ONNX Runtime runs both) -------------------------------------------------

S_IN, S_OUT = 0.02, 0.05  # the input's and the Concat's (and branches') scales


def _branches_graph(branches: list[tuple[tuple[int, int], list[int], list[int]]], *,
                    weight_zp: int = 0, branch_zp: np.ndarray | None = None,
                    dq_scale: float = S_OUT) -> onnx.ModelProto:
    """x -> Q -> DQ -> one Conv per branch ((kernel, pads, strides)) -> Q -> DQ -> Concat ->
    Q -> DQ -> y, with int8 weights per output channel and int32 biases."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(S_IN, np.float32), "s_in"),
             numpy_helper.from_array(np.array(0, np.int8), "z_in"),
             numpy_helper.from_array(np.array(S_OUT, np.float32), "s_out"),
             numpy_helper.from_array(np.array(dq_scale, np.float32), "s_dq"),
             numpy_helper.from_array(np.array(0, np.uint8), "z_out"),
             numpy_helper.from_array(branch_zp if branch_zp is not None
                                     else np.array(0, np.uint8), "z_branch")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"])]
    joined = []
    for i, (kernel, pads, strides) in enumerate(branches):
        w = rng.integers(-60, 61, (6, 4, *kernel)).astype(np.int8)
        sw = rng.uniform(0.005, 0.02, 6).astype(np.float32)
        b = rng.integers(-500, 500, 6).astype(np.int32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(sw, f"sw{i}"),
                  numpy_helper.from_array(np.full(6, weight_zp, np.int8), f"zw{i}"),
                  numpy_helper.from_array(b, f"b{i}"),
                  numpy_helper.from_array((sw * S_IN).astype(np.float32), f"sb{i}"),
                  numpy_helper.from_array(np.zeros(6, np.int32), f"zb{i}")]
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}", f"sw{i}", f"zw{i}"], [f"wd{i}"],
                                   axis=0),
                  helper.make_node("DequantizeLinear", [f"b{i}", f"sb{i}", f"zb{i}"], [f"bd{i}"],
                                   axis=0),
                  helper.make_node("Conv", ["xd", f"wd{i}", f"bd{i}"], [f"c{i}"], name=f"conv{i}",
                                   kernel_shape=list(kernel), pads=pads, strides=strides),
                  helper.make_node("QuantizeLinear", [f"c{i}", "s_out", "z_branch"], [f"cq{i}"]),
                  helper.make_node("DequantizeLinear", [f"cq{i}", "s_dq", "z_branch"],
                                   [f"cd{i}"])]
        joined.append(f"cd{i}")
    nodes += [helper.make_node("Concat", joined, ["cat"], name="concat", axis=1),
              helper.make_node("QuantizeLinear", ["cat", "s_out", "z_out"], ["catq"]),
              helper.make_node("DequantizeLinear", ["catq", "s_out", "z_out"], ["y"])]
    graph = helper.make_graph(nodes, "branches",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("branches", [
    [((1, 1), [0, 0, 0, 0], [1, 1]), ((3, 3), [1, 1, 1, 1], [1, 1])],  # a fire module
    [((3, 3), [1, 1, 1, 1], [1, 1]), ((1, 1), [0, 0, 0, 0], [1, 1])],  # the 3x3 first
    [((1, 3), [0, 1, 0, 1], [1, 1]), ((3, 1), [1, 0, 1, 0], [1, 1])],  # 1x3 beside 3x1
    [((1, 1), [0, 0, 0, 0], [2, 2]), ((3, 3), [1, 1, 1, 1], [2, 2])],  # stride 2
    [((3, 3), [0, 0, 0, 0], [1, 1]), ((5, 5), [1, 1, 1, 1], [1, 1])],  # "valid", centred
    [((1, 1), [0, 0, 0, 0], [1, 1]), ((3, 3), [1, 1, 1, 1], [1, 1]),
     ((5, 5), [2, 2, 2, 2], [1, 1])],  # three branches
])
def test_merged_branches_compute_the_same(branches: list) -> None:  # noqa: ANN001
    from edgecnn.export.merge import merge, sibling_groups

    proto = _branches_graph(branches)
    (group,) = sibling_groups(proto)
    merged = merge(proto, [group])
    assert [n.op_type for n in merged.graph.node].count("Conv") == 1
    x = np.random.default_rng(1).standard_normal((1, 4, 9, 9), dtype=np.float32)
    np.testing.assert_allclose(_run(merged, x), _run(proto, x), rtol=0, atol=1.01 * S_OUT)


@pytest.mark.parametrize("why, branches, options", [
    ("strides differ", [((1, 1), [0, 0, 0, 0], [1, 1]), ((3, 3), [1, 1, 1, 1], [2, 2])], {}),
    ("centres do not line up", [((1, 1), [0, 0, 0, 0], [1, 1]),
                                ((3, 3), [0, 0, 0, 0], [1, 1])], {}),
    ("asymmetric pads", [((1, 1), [0, 0, 0, 0], [1, 1]), ((3, 3), [1, 1, 0, 0], [1, 1])], {}),
    ("an even kernel", [((2, 2), [0, 0, 1, 1], [1, 1]), ((2, 2), [0, 0, 1, 1], [1, 1])], {}),
    ("weight zero points", [((1, 1), [0, 0, 0, 0], [1, 1]), ((3, 3), [1, 1, 1, 1], [1, 1])],
     {"weight_zp": 3}),
    ("the branches clamp at s8", [((1, 1), [0, 0, 0, 0], [1, 1]),
                                  ((3, 3), [1, 1, 1, 1], [1, 1])],
     {"branch_zp": np.array(0, np.int8)}),
    ("a DQ at another scale than its Q", [((1, 1), [0, 0, 0, 0], [1, 1]),
                                          ((3, 3), [1, 1, 1, 1], [1, 1])],
     {"dq_scale": 2 * S_OUT}),
])
def test_branches_that_would_compute_otherwise_are_left_alone(why: str, branches: list,
                                                              options: dict) -> None:
    from edgecnn.export.merge import sibling_groups

    assert sibling_groups(_branches_graph(branches, **options)) == [], why


def test_a_rewrite_must_beat_the_int8_file_in_its_own_runtime() -> None:
    """The merged file 1% faster than model.int8.onnx in OpenVINO, with a 2% band: a coin
    toss between two files of the same integers, so the smaller one (as exported) is kept;
    4% faster: merged."""
    from edgecnn.export.decision import choose_tuned

    ms = {("int8", "onnxruntime"): 2.0, ("float", "onnxruntime"): 4.0,
          ("int8", "openvino"): 1.00, ("float", "openvino"): 4.2, ("merged", "openvino"): 0.99}
    tie = choose_tuned(ms, "onnxruntime", 0.02, 0.05)
    assert (tie.candidate, tie.runtime) == ("int8", "openvino")
    win = choose_tuned({**ms, ("merged", "openvino"): 0.96}, "onnxruntime", 0.02, 0.05)
    assert (win.candidate, win.runtime) == ("merged", "openvino")
    assert "every block int8 in openvino 1.000 ms (1.04x)" in win.reason


QEMU = shutil.which("qemu-x86_64") or shutil.which("qemu-x86_64-static")
MERGED_VS_INT8 = r"""
import sys, numpy as np, onnxruntime as ort
x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32) * 1.5
def run(path):
    so = ort.SessionOptions(); so.intra_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: x[i:i + 1]})[0]
                           for i in range(len(x))])
print(float(np.abs(run(sys.argv[1]) - run(sys.argv[2])).max()))
"""


@pytest.mark.skipif(QEMU is None, reason="qemu-user (apt qemu-user-static) is not installed")
@pytest.mark.parametrize("cpu", ["Haswell", "Nehalem"])
def test_the_merged_graph_computes_the_same_on_older_x86_cpus(exported: Path, tmp_path: Path,
                                                              cpu: str) -> None:
    """ONNX Runtime's int8 kernels differ by ISA (AVX2 without VNNI pairs u8 x s8 products
    in int16; SSE4 has neither): under `qemu-x86_64 -cpu`, the merged file still computes
    the int8 file's logits (the default target's 7-bit weights cannot saturate those
    pairs in any tap order). Exact on a 2-vCPU Xeon under both, as natively."""
    import subprocess
    import sys

    from edgecnn.export.merge import merge, sibling_groups

    report = json.loads((exported / "export.json").read_text())
    assert report["target"]["int8_scheme"]["weight_range"] == "reduced"
    int8 = _int8(exported)
    onnx.save_model(merge(int8, sibling_groups(int8)), str(tmp_path / "merged.onnx"))
    out = subprocess.run([QEMU, "-cpu", cpu, sys.executable, "-c", MERGED_VS_INT8,
                          str(exported / "model.int8.onnx"), str(tmp_path / "merged.onnx")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) <= 1.01 * _output_step(exported / "model.int8.onnx")
