"""Export's checks run on the runtime's own runners, fed the graphs' bytes: parity with
PyTorch, the batch probe, the fp16 check and the latency comparison (by the bench harness).

Parity (edgecnn/export/parity.py) is held to both sides: no false refusal (a model of every
zoo family, a trained MobileNet, BN statistics from real digits: the nets that Zen 4's
kernels pushed past the old tolerance) and no missed bug (each bug of
benchmarks/parity/cases.py planted in a random-weight and a trained MobileNet and a
SqueezeNet fails). The margin between the two and other CPUs: benchmarks/parity/.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from benchmarks.parity import cases
from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_io import batch_dynamic, to_onnx_proto
from edgecnn.export.parity import (SLACK, check_parity, compare_latency, ort_runner,
                                   ort_session, parity_runners, require_parity, runner_logits)


def small_net(flatten_by_reshape: bool = False) -> nn.Module:
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv(x)).mean((2, 3))
            # reshape(1, 8) fixes the batch inside the graph, as some user models do
            return self.fc(x.reshape(1, 8) if flatten_by_reshape else x)

    return Net().eval()


@pytest.fixture(scope="module")
def net_and_proto() -> tuple[nn.Module, onnx.ModelProto]:
    model = small_net()
    return model, to_onnx_proto(model, torch.zeros(1, 3, 12, 12))


def test_parity_passes_on_the_export_and_fails_on_a_changed_weight(net_and_proto) -> None:
    model, proto = net_and_proto
    x = np.random.default_rng(0).standard_normal((3, 3, 12, 12), dtype=np.float32)
    result = check_parity(model, proto, x, "random", parity_runners(proto))
    assert result.ok and result.images == 3
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    weight = next(t for t in broken.graph.initializer if len(t.dims) == 2)  # the fc weight
    values = onnx.numpy_helper.to_array(weight).copy()
    values[0, 0] += 0.05
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    bad = check_parity(model, broken, x, "random")
    assert not bad.ok and bad.onnxruntime_max_abs > 1e-3 and bad.openvino_max_abs > 1e-3
    assert bad.onnxruntime_error > 1e-3 and bad.openvino_error > 1e-3  # against float64


def test_a_reference_without_float64_keeps_the_old_floor(net_and_proto) -> None:
    """A foreign file's reference is ONNX Runtime on the original graph, fp32 whatever its
    input: no rounding of its own to measure, so the floor (1e-4 of max(1, |logits|))."""
    from edgecnn.export.foreign import OnnxReference

    model, proto = net_and_proto
    x = np.random.default_rng(0).standard_normal((3, 3, 12, 12), dtype=np.float32)
    reference = OnnxReference(proto, None)
    result = check_parity(reference, proto, x, "random")
    assert result.ok and not result.float64 and result.rounding == 0
    assert result.tolerance == pytest.approx(1e-4 * max(1.0, result.logits_max_abs))
    bias = next(t for t in proto.graph.initializer if t.name == "fc.bias")
    broken = onnx.ModelProto()
    broken.CopyFrom(proto)
    target = next(t for t in broken.graph.initializer if t.name == bias.name)
    target.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 1e-3,
                                                 bias.name))
    assert not check_parity(reference, broken, x, "random").ok


def test_batch_probe_frees_the_batch_unless_the_graph_fixes_it(net_and_proto) -> None:
    _, proto = net_and_proto
    free = batch_dynamic(proto)
    assert free is not None
    x = np.random.default_rng(1).standard_normal((5, 3, 12, 12), dtype=np.float32)
    with ort_runner(free) as batched, ort_runner(proto) as single:
        assert batched.input.shape[0] is None and single.input.shape[0] == 1
        np.testing.assert_allclose(runner_logits(batched, x), runner_logits(single, x),
                                   atol=1e-5)
    fixed = small_net(flatten_by_reshape=True)
    assert batch_dynamic(to_onnx_proto(fixed, torch.zeros(1, 3, 12, 12))) is None


def test_ort_session_is_the_runners_session(net_and_proto) -> None:
    """guard.py and quantize.py use ONNX Runtime's own API on the runner's session."""
    _, proto = net_and_proto
    session = ort_session(proto, threads=0, spinning=False)
    x = np.zeros((1, 3, 12, 12), np.float32)
    assert session.get_inputs()[0].name == "input"
    np.testing.assert_allclose(session.run(None, {"input": x})[0],
                               ort_runner(proto).infer(x), atol=1e-6)


def test_latency_comparison_times_every_variant_with_the_harness(net_and_proto) -> None:
    _, proto = net_and_proto
    ms = compare_latency({"a": proto, "b": proto.SerializeToString()}, 12, 3, blocks=2,
                         runs=3)
    assert set(ms) == {"a", "b"} and all(np.isfinite(v) and v > 0 for v in ms.values())
    shaped = compare_latency({"a": proto}, 0, 0, blocks=1, runs=2, input_shape=(3, 12, 12))
    assert set(shaped) == {"a"}


# ------------------------------------------------------------------------------------------
# No false refusals: the export's own fp32 path, initialized weights with BN statistics from
# a random batch (what `edgecnn export NAME` exports), 4 standard-normal images as the export
# uses. One member per family passes through the CLI, parity included, in
# tests/test_zoo_export_cli.py; here, the deep nets Zen 4 refused under the old fixed
# tolerance (ResNet-101, PreAct-ResNet-200) and the ill-conditioned SqueezeNext-44
# (benchmarks/zoo/conditioning.md).
DEEP = ["resnet101@32", "preact_resnet200@32", "squeezenext44@48"]


def _zoo_passes(spec: str) -> None:
    name, res = spec.split("@")
    model = cases.zoo_model(name, int(res), alpha=None)
    x = cases.random_inputs(model, int(res))
    result = check_parity(model, cases.export_fp32(model, x), x, "random")
    assert result.logits_max_abs > 1e-3, "logits vanish: parity would be vacuous"
    assert result.float64 and result.rounding > 0
    require_parity([result])


@pytest.mark.slow
@pytest.mark.parametrize("spec", DEEP)
def test_deep_nets_pass_parity(spec: str) -> None:
    _zoo_passes(spec)


@pytest.fixture(scope="module")
def digit_images() -> np.ndarray:
    return cases.digits(32, "val", 8)[0]


class Subject:
    """A model, its honest export and random inputs, made once per module: the bug tests
    plant into the graph (cheap) and run only the check."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.x = cases.random_inputs(model, 32)
        self.proto = cases.export_fp32(model, self.x)

    def planted(self, bug: str) -> onnx.ModelProto:
        if bug == "bn_eps":
            return cases.bn_eps_bug(self.model, self.x)
        return cases.plant(self.proto, bug)


@pytest.fixture(scope="module")
def trained() -> Subject:
    """MobileNet alpha 0.25 at 32 px trained briefly on mnist5k, BN eps 1e-3 (~7 s)."""
    model, top1 = cases.trained_model()
    assert top1 > 0.8, f"the model did not learn ({top1:.0%} held-out)"
    return Subject(model)


@pytest.fixture(scope="module")
def random_mobilenet() -> Subject:
    return Subject(cases.zoo_model("mobilenet", 32, alpha=0.25, bn_eps=cases.TRAIN_EPS))


@pytest.fixture(scope="module")
def squeezenet() -> Subject:
    return Subject(cases.zoo_model("squeezenet1_1", 32))


def test_trained_model_passes_on_random_and_real_images(trained, digit_images) -> None:
    """tests/test_arm64.py's trained MobileNet was refused on a Zen 4 under the old rule
    (ONNX Runtime 4.66e-4 and OpenVINO 7.0e-4 from PyTorch, logits up to 0.17)."""
    consumers = parity_runners(trained.proto)
    require_parity([check_parity(trained.model, trained.proto, trained.x, "random", consumers),
                    check_parity(trained.model, trained.proto, digit_images, "mnist5k",
                                 consumers)])


@pytest.mark.parametrize("name,alpha", [("mobilenet", 0.25), ("mobilenet_v2", 0.25)])
def test_bn_statistics_from_digits_pass(name: str, alpha: float, digit_images) -> None:
    """tests/test_arm64.py's untrained checkpoints, BN statistics from 64 digits: channels
    of near-zero variance amplify every rounding, PyTorch's own included."""
    subject = Subject(cases.digits_bn_model(name, alpha))
    consumers = parity_runners(subject.proto)
    require_parity([check_parity(subject.model, subject.proto, subject.x, "random", consumers),
                    check_parity(subject.model, subject.proto, digit_images, "mnist5k",
                                 consumers)])


# ------------------------------------------------------------------------------------------
# Real bugs caught: each planted in the graph (or the module exported), then the real check
# (ONNX Runtime and OpenVINO against float64 PyTorch); the same subjects' honest exports pass
# (above, and test_the_subjects_honest_exports_pass).
def _must_fail(subject: Subject, bug: str, x: np.ndarray, inputs: str) -> None:
    bad = check_parity(subject.model, subject.planted(bug), x, inputs)
    assert not bad.ok
    if not bad.shape_mismatch:  # both consumers see it, far beyond the tolerance
        assert min(bad.onnxruntime_error, bad.openvino_error) > 100 * bad.tolerance
    with pytest.raises(EdgeCNNError) as err:
        require_parity([bad])
    message = str(err.value)
    assert "\n" not in message and message.endswith("; nothing was written")
    assert ("another shape" in message) == bool(bad.shape_mismatch)


def test_the_subjects_honest_exports_pass(random_mobilenet, squeezenet) -> None:
    for subject in (random_mobilenet, squeezenet):
        require_parity([check_parity(subject.model, subject.proto, subject.x, "random")])


@pytest.mark.parametrize("bug", cases.BUGS)
def test_planted_bug_fails_in_a_random_weight_mobilenet(bug: str, random_mobilenet) -> None:
    _must_fail(random_mobilenet, bug, random_mobilenet.x, "random")


@pytest.mark.parametrize("bug", cases.BUGS)
def test_planted_bug_fails_in_the_trained_mobilenet(bug: str, trained, digit_images) -> None:
    _must_fail(trained, bug, trained.x, "random")
    if bug != "rgb":  # gray digits have three equal channels: RGB or BGR, the same image
        _must_fail(trained, bug, digit_images, "mnist5k")


@pytest.mark.parametrize("bug", ["rgb", "pad", "classifier"])
def test_planted_bug_fails_in_a_squeezenet(bug: str, squeezenet) -> None:
    """Initialized SqueezeNet 1.1 has zero biases and no BN ("bias", "bn_eps" plant
    nothing) and all-positive logits at 32 px (its final ReLU is the identity there)."""
    _must_fail(squeezenet, bug, squeezenet.x, "random")


def test_the_tolerance_is_measured_not_fixed(trained) -> None:
    """Logits scaled by 1,000 (a last layer's weights) scale the budget with them: the rule
    judges in the logits' own units, trained and random nets alike."""
    import copy

    big = copy.deepcopy(trained.model)
    with torch.no_grad():
        big.classifier.weight *= 1000
        big.classifier.bias *= 1000
    small = check_parity(trained.model, trained.proto, trained.x, "random")
    large = check_parity(big, cases.export_fp32(big, trained.x), trained.x, "random")
    assert small.ok and large.ok
    assert large.tolerance == pytest.approx(1000 * small.tolerance, rel=0.5)
    assert small.tolerance == pytest.approx(SLACK * small.rounding)
