"""Checks every registered model passes, so a new model is enrolled automatically.

Figures against the papers live in the per-family files (test_zoo_*.py); here: shapes,
finite outputs, gradients, determinism, the input-size check, and ONNX parity.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgecnn
from edgecnn.errors import EdgeCNNError
from tests.conftest import calibrate_bn

MODELS = edgecnn.list_models()
# Models whose real weights are large (>= ~60M params or very deep): fewer real-memory checks.
HEAVY = {n for n in MODELS if n.startswith(("vgg", "alexnet", "resnet152", "resnext101",
                                            "preact_resnet152", "preact_resnet200",
                                            "densenet264", "densenet201"))}


def small_resolution(name: str) -> int:
    """The smallest documented input side the model runs at (cheap to run on 2 cores)."""
    return edgecnn.get_spec(name).min_resolution


@pytest.mark.parametrize("name", MODELS)
def test_default_resolution_output_shape(name: str) -> None:
    spec = edgecnn.get_spec(name)
    with torch.device("meta"):
        model = edgecnn.create_model(name, num_classes=11).eval()
        y = model(torch.empty(2, spec.in_chans, spec.resolution, spec.resolution))
    assert tuple(y.shape) == (2, 11)


@pytest.mark.parametrize("name", MODELS)
def test_too_small_input_is_a_clear_error(name: str) -> None:
    spec = edgecnn.get_spec(name)
    with torch.device("meta"):
        model = edgecnn.create_model(name).eval()
        model(torch.empty(1, spec.in_chans, spec.min_resolution, spec.min_resolution))
        small = spec.min_resolution - 1
        with pytest.raises(EdgeCNNError, match=f"at least {spec.min_resolution}x"):
            model(torch.empty(1, spec.in_chans, small, small))


@pytest.mark.parametrize("name", [n for n in MODELS if n not in HEAVY])
def test_forward_backward_and_determinism(name: str) -> None:
    torch.manual_seed(0)
    spec = edgecnn.get_spec(name)
    res = small_resolution(name)
    model = edgecnn.create_model(name, num_classes=5)
    x = torch.randn(2, spec.in_chans, res, res, requires_grad=True)
    model.train()
    y = model(x)
    y = y[0] if isinstance(y, tuple) else y
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b), "eval mode must be deterministic"


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_matches_pytorch(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from edgecnn.export.onnx_io import INPUT_NAME, to_onnx_proto

    torch.manual_seed(0)
    spec = edgecnn.get_spec(name)
    # At least 32 px: at SqueezeNext's 9 px minimum a random-weight net's logits reach 1e5
    # and fp32 rounding alone swamps any tolerance.
    res = max(small_resolution(name), 32)
    model = edgecnn.create_model(name, num_classes=10)
    # BN statistics from 8 images: from 2 alone a 1x1 last stage gives near-zero variances
    # that blow fp32 rounding up to nonsense.
    calib = torch.randn(8, spec.in_chans, res, res)
    calibrate_bn(model, calib)
    x = calib[:2]
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(expected).max() > 1e-3, "logits vanish: the parity check would be vacuous"
    # opset 18: where the TorchScript exporter lacks an op (AlexNet/VGG's adaptive pooling at
    # sizes that are not factors), the dynamo exporter takes over, as `--opset 18` does
    proto = to_onnx_proto(model, x, opset=18, dynamic_batch=True)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: x.numpy()})[0]
    # Within 1e-4 of PyTorch on O(1) logits (LeNet's, with no BN, are scaled to O(1) first).
    # Deep random-weight nets (ResNet-152, SqueezeNext-44) are ill-conditioned: PyTorch fp32
    # itself is ~2e-4 away from exact arithmetic there. So the bound is 1e-4 or PyTorch fp32's
    # own error against a float64 run of the same model, whichever is larger: the export must
    # add no error beyond fp32 rounding.
    with torch.no_grad():
        exact = model.double()(x.double()).numpy()
    scale = max(1.0, float(np.abs(exact).max()))
    torch_error = float(np.abs(expected - exact).max()) / scale
    onnx_error = float(np.abs(got - exact).max()) / scale
    assert onnx_error <= max(1e-4, 2 * torch_error), (onnx_error, torch_error)
