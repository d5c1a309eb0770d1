"""A foreign ONNX image classifier (written by another tool) made into an export source.

    src = from_onnx(OnnxSource("other.onnx", mean=..., std=..., labels="labels.txt"),
                    opset=17, max_ir_version=10, dynamic_batch=False)
    src.onnx            # the graph, normalized and fitted to the target's opset and IR
    src.model           # the original graph in ONNX Runtime: the parity reference
    src.onnx_report     # what was done to the file, for export.json

Normalizing (each step recorded in the report, none changes what the model computes):
- old IR versions list initializers among the graph inputs: the data input is the one input
  that is not an initializer, and the others leave the input list;
- the data input becomes `input`, (N, C, R, R) float32, batch 1 or dynamic; an NHWC input
  (channels 1 or 3 last) gets a Transpose in front, so the artifact takes NCHW like ours;
- the output becomes `logits`, (N, classes): an (N, C, 1, 1) output is flattened, and a
  final Softmax is taken off (argmax is unchanged; int8 calibrates on logits, and no runtime
  applies a second softmax); the parity reference keeps the original's numbers before it;
- the opset is converted to the target's with onnx.version_converter, and the IR version set
  to the lowest the opset allows when the file's is above what the target reads.
The file's own metadata_props are kept; ours are added by the caller.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import file_sha256
from edgecnn.export.onnx_io import INPUT_NAME, OUTPUT_NAME
from edgecnn.export.source import Source
from edgecnn.export.spec import OnnxSource, check_mean_std
from edgecnn.runtime.onnx_file import OnnxInfo, read_onnx

DEFAULT_DOMAINS = ("", "ai.onnx")


def from_onnx(src: OnnxSource, *, opset: int | None, max_ir_version: int | None,
              dynamic_batch: bool) -> Source:
    path = Path(src.path).expanduser()
    info, proto = read_model(path)
    props = {p.key: p.value for p in proto.metadata_props}
    data_in = image_input(info, proto, path)
    layout, chans, side = _layout(data_in, info.layout, path, src.resolution)
    ours = _edgecnn_metadata(props, path)
    mean = src.mean if src.mean is not None else (ours.mean if ours else None)
    std = src.std if src.std is not None else (ours.std if ours else None)
    if mean is None:
        raise EdgeCNNError(f"{path.name} has no edgecnn metadata: give its preprocessing with "
                           "--mean R,G,B and --std R,G,B (0-1 pixel scale)")
    check_mean_std(mean, std, chans)
    report: dict[str, Any] = {
        "file": str(path), "sha256": file_sha256(path),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ir_version_in": proto.ir_version, "opset_in": default_opset(proto),
        "input_in": data_in.name, "layout_in": layout, "softmax_output": info.softmax_output,
        "metadata_kept": sorted(k for k in props if not k.startswith("edgecnn."))}
    graph = normalize(proto, data_in.name, layout, chans, side, dynamic_batch, report)
    reference = copy.deepcopy(graph)
    n_classes = _class_count(reference, chans, side)
    classes = _labels(src.labels, n_classes) if src.labels else \
        (ours.classes if ours and len(ours.classes) == n_classes
         else tuple(str(i) for i in range(n_classes)))
    fitted = fit_to_target(graph, opset=opset, max_ir_version=max_ir_version, path=path)
    report.update(opset=default_opset(fitted), ir_version=fitted.ir_version)
    return Source(model=OnnxReference(reference, max_ir_version), name=_name(path, ours),
                  alpha=ours.alpha if ours else 1.0, resolution=side, in_chans=chans,
                  mean=tuple(map(float, mean)), std=tuple(map(float, std)), classes=classes,
                  trained=ours.trained if ours else True,  # a file from a tool: its weights
                  checkpoint_sha256=ours.source_checkpoint_sha256 if ours else "",
                  kind="onnx", onnx=fitted, onnx_report=report,
                  onnx_props={k: v for k, v in props.items() if not k.startswith("edgecnn.")},
                  dataset=ours.dataset if ours else "")


def read_model(path: Path) -> tuple[OnnxInfo, onnx.ModelProto]:
    """The runtime's reading of the file (is it ONNX, external data inside its folder, which
    inputs are data), then the onnx package's."""
    try:
        info = read_onnx(path)
    except EdgeCNNError as exc:
        raise EdgeCNNError(str(exc).replace("not an ONNX model", "not an ONNX file")) from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf decode error: not an ONNX file
        raise EdgeCNNError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    if not proto.graph.node or not proto.opset_import:
        raise EdgeCNNError(f"{path}: not an ONNX model (no graph)")
    if any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer):
        onnx.load_external_data_for_model(proto, str(path.parent))
    return info, proto


def image_input(info: OnnxInfo, proto: onnx.ModelProto, path: Path) -> onnx.ValueInfoProto:
    """The data input: the one graph input that is not an initializer (the runtime's
    reading), 4-D float."""
    data = [v for v in proto.graph.input if v.name in {t.name for t in info.inputs}]
    four_d = [v for v in data if v.type.tensor_type.elem_type == TensorProto.FLOAT
              and len(v.type.tensor_type.shape.dim) == 4]
    if len(data) != 1 or len(four_d) != 1:
        shapes = ", ".join(f"{v.name} {_shape(v)}" for v in data) or "none"
        raise EdgeCNNError(f"{path.name} has no image input (one float (N, C, H, W) or "
                           f"(N, H, W, C) tensor); its inputs: {shapes}")
    return four_d[0]


def _layout(value: onnx.ValueInfoProto, layout: str, path: Path, resolution: int | None
            ) -> tuple[str, int, int]:
    """(layout, channels, side): the runtime's reading of NCHW/NHWC; the side is square."""
    dims = _shape(value)
    if layout == "NHWC":
        chans, hw = dims[3], dims[1:3]
    elif dims[1] in (1, 3):
        chans, hw = dims[1], dims[2:]
    else:
        raise EdgeCNNError(f"{path.name} has no image input: {value.name} is {dims}, with "
                           "neither 1 nor 3 channels first or last")
    fixed = [d for d in hw if isinstance(d, int) and d > 0]
    if len(fixed) == 2 and fixed[0] != fixed[1]:
        raise EdgeCNNError(f"{path.name} takes {fixed[0]}x{fixed[1]} images; edgecnn "
                           "artifacts are square")
    if fixed:
        if resolution is not None and resolution != fixed[0]:
            raise EdgeCNNError(f"--resolution {resolution} contradicts {path.name}'s fixed "
                               f"input side {fixed[0]}")
        return layout, chans, fixed[0]
    if resolution is None:
        raise EdgeCNNError(f"{path.name} has a dynamic input size: give --resolution N")
    return layout, chans, resolution


def _shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim]


def normalize(proto: onnx.ModelProto, data_name: str, layout: str, chans: int, side: int,
              dynamic_batch: bool, report: dict[str, Any]) -> onnx.ModelProto:
    """The steps of the module doc; returns a new model."""
    model = copy.deepcopy(proto)
    g = model.graph
    inits = {t.name for t in g.initializer}
    kept = [v for v in g.input if v.name == data_name]
    report["initializer_inputs_removed"] = len(g.input) - len(kept)
    del g.input[:]
    g.input.extend(kept)
    if model.ir_version < 4:  # IR 4 is the first where an initializer need not be an input
        model.ir_version = 4
    for i, node in enumerate(g.node):  # quantization excludes layers by node name
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    if len(g.output) != 1:
        raise EdgeCNNError(f"the graph has {len(g.output)} outputs; an image classifier "
                           "has one (the class scores)")
    out_name = g.output[0].name
    producer = next((n for n in g.node if out_name in n.output), None)
    report["softmax_removed"] = bool(producer is not None and producer.op_type == "Softmax"
                                     and not _consumed(g, out_name))
    if report["softmax_removed"]:
        g.node.remove(producer)
        out_name = producer.input[0]
    batch = "batch" if dynamic_batch else 1
    dims = kept[0].type.tensor_type.shape.dim if kept else []
    # a free batch axis in the file ("N", or none given) fixed to 1 is said, not done quietly
    report["batch_fixed"] = "" if dynamic_batch or not dims or dims[0].dim_value == 1 \
        else (dims[0].dim_param or "?")
    # the input: renamed (and transposed from NHWC), fixed side, batch 1 or free
    new_in = INPUT_NAME
    _rename(g, data_name, "__data_in" if layout == "NHWC" else new_in, inits)
    if layout == "NHWC":
        _check_free(g, new_in, inits)  # the Transpose reads it: no other tensor may be it
        g.node.insert(0, helper.make_node("Transpose", [new_in], ["__data_in"],
                                          name="edgecnn_nchw_to_nhwc", perm=[0, 2, 3, 1]))
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(new_in, TensorProto.FLOAT,
                                                 [batch, chans, side, side]))
    # the output: (N, C) logits
    rank = len(g.output[0].type.tensor_type.shape.dim)
    del g.output[:]
    if rank == 4:
        g.node.append(helper.make_node("Flatten", [out_name], [OUTPUT_NAME], axis=1,
                                       name="edgecnn_flatten_scores"))
    elif rank == 2 or rank == 0:
        _rename(g, out_name, OUTPUT_NAME, inits)
    else:
        raise EdgeCNNError(f"the graph's output has rank {rank}; an image classifier "
                           "returns (N, classes) or (N, classes, 1, 1)")
    report["output_flattened"] = rank == 4
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT,
                                                  [batch, None]))
    del g.value_info[:]  # stale shapes (the batch, the renamed tensors): inferred again
    return model


def _consumed(graph: onnx.GraphProto, name: str) -> bool:
    return any(name in n.input for n in graph.node)


def _rename(graph: onnx.GraphProto, old: str, new: str, inits: set[str]) -> None:
    if old == new:
        return
    _check_free(graph, new, inits)
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]


def _check_free(graph: onnx.GraphProto, name: str, inits: set[str]) -> None:
    if name in inits or any(name in n.output for n in graph.node):
        raise EdgeCNNError(f"the graph already has a tensor named {name!r}")


def default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), 0)


def fit_to_target(proto: onnx.ModelProto, *, opset: int | None, max_ir_version: int | None,
                  path: Path) -> onnx.ModelProto:
    """The target's opset (onnx.version_converter) and an IR version it reads, or an error."""
    have = default_opset(proto)
    if opset is not None and opset != have:
        from onnx import version_converter

        try:
            proto = version_converter.convert_version(proto, opset)
            onnx.checker.check_model(proto)
        except Exception as exc:  # the converter lacks an adapter for some op
            first = str(exc).splitlines()[0][:140] if str(exc) else type(exc).__name__
            raise EdgeCNNError(f"{path.name}: cannot convert opset {have} to {opset} ({first}); "
                               f"choose a target or --opset that takes {have}") from None
    if max_ir_version is not None:
        lowest = helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        if lowest > max_ir_version:
            raise EdgeCNNError(f"{path.name}: opset {default_opset(proto)} needs IR >= {lowest}, "
                               f"the target reads IR <= {max_ir_version}")
        # IR 3 files become IR `lowest` (their initializers are no longer inputs)
        proto.ir_version = max(min(proto.ir_version, max_ir_version), lowest)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker and shape-inference errors alike
        raise EdgeCNNError(f"{path.name}: the graph fails onnx.checker "
                           f"({str(exc).splitlines()[0][:140]})") from None
    return proto


def _class_count(proto: onnx.ModelProto, chans: int, side: int) -> int:
    from edgecnn.export.parity import ort_session

    x = np.zeros((1, chans, side, side), np.float32)
    try:
        out = ort_session(_readable(proto, None)).run(None, {INPUT_NAME: x})[0]
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime refusing the graph
        raise EdgeCNNError(f"ONNX Runtime cannot run the model on a (1, {chans}, {side}, "
                           f"{side}) input ({str(exc).splitlines()[0][:140]})") from None
    if out.ndim != 2 or out.shape[0] != 1:
        raise EdgeCNNError(f"the model returns {out.shape} for one image; an image classifier "
                           "returns (1, classes)")
    return int(out.shape[1])


def _labels(path_text: str, n_classes: int) -> tuple[str, ...]:
    """The runtime's labels file (flags.read_labels), one name per output class."""
    from edgecnn.runtime.flags import read_labels

    path = Path(path_text).expanduser()
    names = read_labels(path)
    if len(names) != n_classes:
        raise EdgeCNNError(f"{path}: {len(names)} labels for a model with {n_classes} classes "
                           "(one name per line)")
    return names


def _edgecnn_metadata(props: dict[str, str], path: Path):  # noqa: ANN202
    from edgecnn.metadata import ArtifactMetadata

    if "edgecnn.format" not in props:
        return None
    return ArtifactMetadata.from_props(props, source=path.name)


def _name(path: Path, ours: Any) -> str:
    return ours.model if ours else path.stem


def _readable(proto: onnx.ModelProto, max_ir_version: int | None) -> onnx.ModelProto:
    """A copy ONNX Runtime reads: an IR version at most 10 (the file's opset permitting)."""
    model = copy.deepcopy(proto)
    cap = 10 if max_ir_version is None else max_ir_version
    lowest = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    model.ir_version = max(min(model.ir_version, cap), lowest)
    return model


class OnnxReference(nn.Module):
    """The original graph run by ONNX Runtime, as the parity reference of the fitted one
    (logits before any final Softmax). float32 whatever the input's dtype: the parity check's
    float64 re-run then measures zero fp32 error of its own, which is the truth here."""

    def __init__(self, proto: onnx.ModelProto, max_ir_version: int | None) -> None:
        super().__init__()
        from edgecnn.export.parity import ort_session

        self.session = ort_session(_readable(proto, max_ir_version))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().numpy()
        out = [self.session.run(None, {INPUT_NAME: x[i:i + 1]})[0] for i in range(len(x))]
        return torch.from_numpy(np.concatenate(out))

    def __deepcopy__(self, memo: dict) -> OnnxReference:
        return self  # a session is not copied; the reference is read-only
