"""The models and the planted export bugs that the parity rule (edgecnn/export/parity.py) is
held to, shared by tests/test_export_parity.py and the benchmarks beside this file.

Models go through the export's own fp32 path (TorchScript export, onnxslim with BN folded):
zoo models with initialized weights and BN statistics from a random batch (what `edgecnn
export NAME` exports), the same with BN statistics from real digits (tests/test_arm64.py's
checkpoints), and a MobileNet trained briefly on mnist5k (held-out top-1 is returned, so a
caller can check it learned).

Bugs are planted in the ONNX graph (or, for BN eps, in the module exported) and each is a
mistake an exporter really makes:
    bias        one convolution's bias dropped (the middle one with a bias)
    bn_eps      BatchNorm eps 1e-5 where the model's is 1e-3 (Keras/TF's default)
    rgb         the input's channels reversed (RGB fed as BGR): the stem's weights flipped
    pad         one padding off by one: the stem's begin padding one less, its end one more
                (same output shape; what TF's SAME and PyTorch's symmetric padding differ by)
    final       the last activation left out (SqueezeNet's after its classifier conv)
    classifier  the last layer with weights left out: logits of another shape
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

BUGS = ("bias", "bn_eps", "rgb", "pad", "final", "classifier")
ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "LeakyRelu")
TRAIN_EPS = 1e-3  # the trained model's BN eps (the bn_eps bug exports it with 1e-5)


def export_fp32(model: nn.Module, x: np.ndarray) -> onnx.ModelProto:
    """The export's fp32 path for a batch like `x`: TorchScript (dynamo at opset 18 where it
    lacks an op), then onnxslim (constant folding, BN folded into the convolutions)."""
    from edgecnn.export.onnx_io import simplify, to_onnx_proto

    return simplify(to_onnx_proto(model, torch.from_numpy(x[:1]), opset=18,
                                  dynamic_batch=True))


def zoo_model(name: str, resolution: int, *, alpha: float | None = None,
              bn_eps: float | None = None) -> nn.Module:
    """What `edgecnn export NAME` exports: initialized weights, BN statistics from a random
    batch (edgecnn.export.source); `bn_eps` replaces every BatchNorm's eps."""
    from edgecnn.export.source import resolve_source
    from edgecnn.export.spec import ZooSource

    model = resolve_source(ZooSource(name, alpha=alpha, resolution=resolution,
                                     num_classes=10)).model
    if bn_eps is not None:
        set_bn_eps(model, bn_eps)
    return model.eval()


def random_inputs(model: nn.Module, resolution: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """Standard-normal images, as the export's random parity inputs are."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, model.config["in_chans"], resolution, resolution),
                               dtype=np.float32)


def set_bn_eps(model: nn.Module, eps: float) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = eps
    return model


def digits(resolution: int, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mnist5k through the runtime's own preprocessing, 3 channels, normalized."""
    from edgecnn.data import load_dataset
    from edgecnn.data.view import model_pixels

    ds = load_dataset("mnist5k", split=split)
    if limit is not None:
        ds = ds.subset(np.arange(limit))
    pixels = model_pixels(ds, resolution, 3).astype(np.float32) / 255.0
    x = (pixels - np.float32(ds.mean[0])) / np.float32(ds.std[0])
    return x.astype(np.float32), ds.labels


def trained_model(name: str = "mobilenet", alpha: float = 0.25, resolution: int = 32,
                  steps: int = 100, seed: int = 0) -> tuple[nn.Module, float]:
    """`name` trained `steps` Adam steps (batch 32, lr 1e-2) on 2,000 mnist5k digits with BN
    eps 1e-3: ~7 s on a shared core, ~93% held-out top-1 for MobileNet alpha 0.25 at 32 px.
    Returns the model (eval mode) and its held-out top-1 on 500 images."""
    from edgecnn.registry import create_model

    x, y = digits(resolution, "train", 2000)
    torch.manual_seed(seed)
    model = set_bn_eps(create_model(name, alpha=alpha, num_classes=10), TRAIN_EPS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, len(x), 32)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x[idx])),
                                           torch.from_numpy(y[idx]).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xv, yv = digits(resolution, "val", 500)
    with torch.no_grad():
        top1 = float((model(torch.from_numpy(xv)).argmax(1).numpy() == yv).mean())
    return model, top1


def digits_bn_model(name: str, alpha: float, resolution: int = 32) -> nn.Module:
    """Initialized weights with BatchNorm statistics from 64 real digits, as
    tests/test_arm64.py's checkpoints: near-constant backgrounds leave channels of tiny
    variance that BN then amplifies, rounding included (the ill-conditioned case)."""
    from edgecnn.export.source import init_bn_stats
    from edgecnn.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, alpha=alpha, num_classes=10)
    init_bn_stats(model, torch.from_numpy(digits(resolution, "val", 64)[0]))
    return model.eval()


def consumers_logits(proto: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """ONNX Runtime's and OpenVINO's logits, as check_parity runs them."""
    from edgecnn.export.parity import consumer_logits, parity_runners

    return consumer_logits(parity_runners(proto), x)


def bn_eps_bug(model: nn.Module, x: np.ndarray) -> onnx.ModelProto:
    """The model exported with BatchNorm eps 1e-5 in place of its own."""
    return export_fp32(set_bn_eps(copy.deepcopy(model), 1e-5), x)


def _attr(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def convs(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in proto.graph.node if n.op_type == "Conv"]


def plant(proto: onnx.ModelProto, bug: str, index: int | None = None) -> onnx.ModelProto:
    """A copy of `proto` with the graph bug `bug` (module doc); `index` picks another conv
    than the default for "bias" and "pad" (the margin sweep tries each)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    if bug == "bias":
        biased = [n for n in convs(out) if len(n.input) == 3 and n.input[2]]
        node = biased[len(biased) // 2 if index is None else index]
        del node.input[2]
    elif bug == "rgb":
        node = next(n for n in g.node if g.input[0].name in n.input)
        assert node.op_type == "Conv", f"the stem is a {node.op_type}"
        init = next(t for t in g.initializer if t.name == node.input[1])
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init)[:, ::-1].copy(),
                                              init.name))
    elif bug == "pad":
        padded = [n for n in convs(out) if _attr(n, "pads") and max(_attr(n, "pads").ints)]
        pads = _attr(padded[0 if index is None else index], "pads")
        half = len(pads.ints) // 2  # [begins..., ends...]: one pixel moved from begin to end
        new = [p - 1 for p in pads.ints[:half]] + [p + 1 for p in pads.ints[half:]]
        if min(new) < 0:
            raise ValueError("no padding to move")
        pads.ints[:] = new
    elif bug == "final":
        _bypass(g, [n for n in g.node if n.op_type in ACTIVATIONS][-1])
    elif bug == "classifier":
        _bypass(g, [n for n in g.node if n.op_type in ("Gemm", "MatMul", "Conv")][-1])
    else:
        raise ValueError(f"unknown bug {bug!r}")
    return out


def _bypass(g: onnx.GraphProto, node: onnx.NodeProto) -> None:
    """Take `node` out of the graph: its consumers (or the graph output) read its input."""
    src, dst = node.input[0], node.output[0]
    g.node.remove(node)
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == dst:
                n.input[i] = src
    for o in g.output:
        if o.name == dst:  # the output keeps its name: rename what now produces it
            for n in g.node:
                for i, name in enumerate(n.output):
                    if name == src:
                        n.output[i] = dst
                for i, name in enumerate(n.input):
                    if name == src:
                        n.input[i] = dst
            o.type.tensor_type.ClearField("shape")
    del g.value_info[:]
