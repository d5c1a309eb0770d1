"""edgecnn fit's latency table (edgecnn/fit/latency.py, cut.py): layers and pairs cut out of
a graph, the table's prediction and its held-out check, int8's ratio. Measurements are
injected (WeightsMeasure from tests/test_fit.py, BoundaryMeasure), so no result depends on
the speed of this machine; the cut-outs themselves run in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgecnn.fit.latency import calibrate, measure_grid, untrained_graph
from tests.test_fit import WeightsMeasure


class BoundaryMeasure(WeightsMeasure):
    """WeightsMeasure plus a cost for the graph's input and output elements, as a runtime
    pays converting them to its own layout and back (ONNX Runtime's NCHWc reorders): a
    whole model pays it once, a layer cut out of it on every side."""

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        out = super().time(files)
        for name, path in files.items():
            g = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
            sizes = [int(np.prod([d.dim_value for d in v.type.tensor_type.shape.dim]))
                     for v in [*g.input, *g.output]]
            out[name] += sum(sizes) / 1e4
        return out


# --- the latency table ----------------------------------------------------------------------

def test_table_predicts_held_out_points_from_layers(tmp_path: Path) -> None:
    graphs = {f"a{a}": untrained_graph("mobilenet", a, 32, 10, 3) for a in (0.25, 0.5, 0.75)}
    grid = measure_grid(graphs, WeightsMeasure(), tmp_path / "layers", tmp_path / "graphs")
    table, whole, fit_pts, held = grid.table, grid.whole_ms, grid.fit, grid.held_out
    assert table.empty_ms == pytest.approx(0.01)
    assert fit_pts and held and not set(fit_pts) & set(held) and set(whole) == set(graphs)
    calibrate(table, whole, fit_pts[:1], held + fit_pts[1:])
    # additive truth: the layers sum to the whole, the held-out error is rounding only
    assert table.check["max_abs_error_pct"] < 0.5
    for name in graphs:
        assert table.predict(name) == pytest.approx(whole[name], rel=5e-3)
    # a wrong table is caught by the held-out check, not hidden by it
    table.layers_ms = {k: 2 * v for k, v in table.layers_ms.items()}
    calibrate(table, whole, fit_pts[:1], held)
    assert table.check["max_abs_error_pct"] > 10


def test_the_table_takes_off_what_the_whole_model_pays_once_per_edge(tmp_path: Path) -> None:
    """Timed alone, every layer pays its input's and output's conversion; the pairs of a
    layer and the next tell what the whole model saves at each edge, so the prediction is
    exact on a chain. Without the pairs the held-out error is far over 10%."""
    graphs = {f"a{a}-r{r}": untrained_graph("mobilenet", a, r, 10, 3)
              for a in (0.25, 0.5, 1.0) for r in (32, 64)}
    grid = measure_grid(graphs, BoundaryMeasure(), tmp_path / "layers", tmp_path / "graphs")
    table, whole, fit_pts, held = grid.table, grid.whole_ms, grid.fit, grid.held_out
    assert table.edges_ms and all(len(table.graph_edges[g]) == len(table.graphs[g]) - 1
                                  for g in graphs)  # a chain: one edge fewer than layers
    calibrate(table, whole, fit_pts, held)
    assert table.check["max_abs_error_pct"] < 0.5
    table.edges_ms = {k: 0.0 for k in table.edges_ms}  # the layers alone
    calibrate(table, whole, fit_pts, held)
    assert table.check["max_abs_error_pct"] > 10


def test_a_slow_group_on_a_fit_point_is_timed_again(tmp_path: Path) -> None:
    """Every group of the first whole timing catches one fit point 30% slow: the line tilts,
    the held-out check says so, and the points are timed again (each one's fastest)."""
    from edgecnn.fit.latency import LAYER_GROUPS
    from edgecnn.fit.run import _latency
    from edgecnn.fit.space import grid

    class SlowOnce(BoundaryMeasure):
        whole_groups = 0

        def time(self, files: dict[str, Path]) -> dict[str, float]:
            out = super().time(files)
            if any(k.startswith("mobilenet-") for k in files):
                self.whole_groups += 1
                if self.whole_groups <= LAYER_GROUPS:  # the first timing's groups
                    out["mobilenet-a0.5-r64-p0-fp32"] *= 1.3
            return out

    archs = grid("mobilenet", (0.25, 0.5, 1.0), (32, 64), ("fp32",))
    measure = SlowOnce()
    lines: list[str] = []
    table, measured, _ = _latency(archs, 10, 3, measure, tmp_path, None, lines.append)
    assert "mobilenet-a0.5-r64-p0-fp32" in table.check["fit_points"]  # the slow one fits
    assert measure.whole_groups == LAYER_GROUPS + 2 and table.check["timed_again"] is True
    assert any("over 10%: timing the 6 points whole again" in line for line in lines)
    assert table.check["max_abs_error_pct"] < 0.5
    clean = BoundaryMeasure().time({"p": tmp_path / "latency" / "graphs" /
                                    "mobilenet-a0.5-r64-p0-fp32.onnx"})["p"]
    assert measured["mobilenet-a0.5-r64-p0-fp32"] == pytest.approx(clean)


def test_whole_points_are_timed_between_the_tables_groups(tmp_path: Path) -> None:
    """The machine slows for a stretch: here the second half of the timing, layers and
    whole models alike. A group of the whole points follows each group of layers, so both
    keep a fastest group from before the stretch, and the check compares them at one speed;
    timed after the table, every whole group would fall in the stretch."""
    from edgecnn.fit.latency import EMPTY, LAYER_GROUPS, measure_grid

    class SlowLater(BoundaryMeasure):
        kinds: list[str] = []

        def time(self, files: dict[str, Path]) -> dict[str, float]:
            out = super().time(files)
            self.kinds.append("layers" if EMPTY in files else "whole")
            if len(self.kinds) > LAYER_GROUPS:  # the second half: 1.5x slower
                out = {k: 1.5 * v for k, v in out.items()}
            return out

    graphs = {f"a{a}-r{r}": untrained_graph("mobilenet", a, r, 10, 3)
              for a in (0.25, 0.5, 1.0) for r in (32, 64)}
    measure = SlowLater()
    lines: list[str] = []
    grid = measure_grid(graphs, measure, tmp_path / "layers", tmp_path / "graphs", lines.append)
    assert measure.kinds == ["layers", "whole"] * LAYER_GROUPS
    assert grid.whole_groups == LAYER_GROUPS and set(grid.whole_files) == set(grid.whole_ms)
    assert grid.whole_ms == pytest.approx(BoundaryMeasure().time(grid.whole_files))
    calibrate(grid.table, grid.whole_ms, grid.fit, grid.held_out)
    assert grid.table.check["max_abs_error_pct"] < 0.5
    assert any("6 grid points whole, a group after each group of layers" in ln for ln in lines)


def test_the_table_times_its_layers_with_workers_parked(tmp_path: Path) -> None:
    """Cut-out layers are timed with ONNX Runtime's workers parked after each run (no pause
    between blocks); whole models as they will run."""
    from edgecnn.fit.latency import LAYER_GROUPS, MeasuredHere
    from edgecnn.runtime.ort_runner import OrtOptions, OrtRunner
    from edgecnn.timing.files import time_files

    class Recording(WeightsMeasure):
        seen: list[bool] = []
        parked = False

        def for_layers(self) -> Recording:
            other = Recording()
            other.parked = True
            return other

        def time(self, files: dict[str, Path]) -> dict[str, float]:
            Recording.seen.append(self.parked)
            return super().time(files)

    measure_grid({"a": untrained_graph("mobilenet", 0.25, 32, 10, 3)}, Recording(),
                 tmp_path / "layers", tmp_path / "graphs")
    # the layers parked, the whole model as it runs, in turn
    assert Recording.seen == [True, False] * LAYER_GROUPS
    assert MeasuredHere(2).for_layers() == MeasuredHere(2, parked=True)
    path = tmp_path / "layers" / "empty.onnx"
    parked = OrtRunner(path, "cpu", OrtOptions(threads=2, park_after_run=True))
    assert not parked.spins_after_run
    assert OrtRunner(path, "cpu", OrtOptions(threads=2)).spins_after_run
    parked.activate()
    config = parked.session.get_session_options().get_session_config_entry
    assert config("session.force_spinning_stop") == "1"
    ms = time_files({"e": path}, "onnxruntime", 2, iters=4, rounds=2, parked=True)
    assert ms["e"] > 0


def test_a_table_written_before_edges_were_timed_still_loads() -> None:
    from edgecnn.fit.latency import LatencyTable

    old = {"layers": {"k": {"ms": 0.5, "layer": "Conv"}}, "graphs": {"g": ["k", "k"]},
           "empty_ms": 0.01, "overhead_ms": 0.1, "scale": 1.0, "check": {}}
    table = LatencyTable.from_dict(old)
    assert table.predict("g") == pytest.approx(1.1)
    assert LatencyTable.from_dict(table.to_dict()).predict("g") == pytest.approx(1.1)
    table.edges_ms, table.graph_edges = {"e": 0.2}, {"g": ["e"]}
    table.describe["e"] = "Conv k -> Conv k (activation input 0)"
    assert LatencyTable.from_dict(table.to_dict()).predict("g") == pytest.approx(0.9)


def test_int8_latency_is_fp32s_prediction_times_the_measured_ratio() -> None:
    """Fit points timed whole in both precisions give int8's ratio; between them it is
    interpolated on the weight count (log scale), beyond them the nearest one's."""
    import math

    from edgecnn.fit.latency import LatencyTable, calibrate, calibrate_int8

    table = LatencyTable({"a": 1.0, "b": 3.0}, {"a": "A", "b": "B"},
                         {"s": ["a"], "m": ["a", "a"], "l": ["a", "b"], "xl": ["b", "b"]}, 0.0,
                         params={"s": 100, "m": 200, "l": 400, "xl": 800})
    fp32 = {"s": 1.0, "m": 2.0, "l": 4.0}  # scale 1, overhead 0: predict = layer sum
    calibrate(table, fp32, ["s", "l"], ["m"])
    int8 = {"s": 0.9, "l": 2.0, "m": 1.3}  # ratios 0.9 at 100 weights, 0.5 at 400
    calibrate_int8(table, fp32, int8, ["s", "l"], ["m"])
    at_m = 0.9 + (0.5 - 0.9) * math.log(2) / math.log(4)  # halfway in log: 0.7
    assert math.isclose(table.predict_int8("m"), 2.0 * at_m)
    assert math.isclose(table.predict_int8("xl"), 6.0 * 0.5)  # beyond the largest
    held = table.check["int8"]["held_out"]["m"]
    assert held["measured_ms"] == 1.3 and held["error_pct"] == round(100 * (1.4 - 1.3) / 1.3, 2)
    back = LatencyTable.from_dict(table.to_dict())
    assert math.isclose(back.predict_int8("m"), table.predict_int8("m"))


# --- the cut-outs run ------------------------------------------------------------------------

def test_every_layer_and_pair_of_a_shufflenet_runs_alone() -> None:
    """Channel split, shuffle (Reshape, Transpose) and Concat: each one-node graph and each
    pair of a layer and the next loads and runs in ONNX Runtime, with the runners' 4-D
    input."""
    import onnxruntime as ort

    from edgecnn.fit.cut import split

    proto = untrained_graph("shufflenet_v2", 0.5, 32, 10, 3)
    parts, pairs = split(proto)
    assert {"Concat", "Transpose", "Gemm"} <= {layer.describe.split()[0] for layer, _ in parts}
    keys = {layer.key for layer, _ in parts}
    assert len(pairs) >= len(parts) - 1
    assert all({e.producer, e.consumer} <= keys for e, _ in pairs)
    for _, one in parts + pairs:
        session = ort.InferenceSession(one.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        (inp,) = session.get_inputs()
        assert len(inp.shape) == 4
        session.run(None, {inp.name: np.zeros(inp.shape, np.float32)})


def test_a_constant_both_layers_of_a_pair_read_goes_in_once() -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.fit.cut import split

    shape = numpy_helper.from_array(np.array([1, 2, 4, 2], np.int64), "s")
    g = helper.make_graph(
        [helper.make_node("Constant", [], ["shape"], value=shape),
         helper.make_node("Reshape", ["x", "shape"], ["y"]),
         helper.make_node("Reshape", ["y", "shape"], ["z"])], "two_reshapes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4, 2, 2))],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, (1, 2, 4, 2))])
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    (edge, pair), = split(proto)[1]
    assert [n.op_type for n in pair.graph.node] == ["Constant", "Reshape", "Reshape"]
    session = ort.InferenceSession(pair.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.zeros((1, 4, 2, 2), np.float32)})
    assert out.shape == (1, 2, 4, 2)
