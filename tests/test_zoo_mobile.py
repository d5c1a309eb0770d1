"""MobileNet v2, MobileNet v3 and ShuffleNet v2 against their published figures.

References:
- torchvision's weight metadata (`num_params`, `_ops` in GFLOPS = GMACs, given to 3 decimals;
  its docs round them to 2): mobilenetv2.py, mobilenetv3.py, shufflenetv2.py.
- TF-slim's MobileNet v2 checkpoint table (tensorflow/models research/slim/nets/mobilenet/
  README.md), the authors' release behind the paper: MACs in M (truncated) and params in M
  counted as conv + fc weights and biases for 1001 classes, batch norm excluded.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from edgecnn import create_model, profile_model
from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import make_divisible
from edgecnn.layers.inverted_residual import InvertedResidual
from edgecnn.layers.shuffle import ShuffleV2Block, channel_shuffle
from edgecnn.profile import count_module
from edgecnn.profile import Profile
from edgecnn.registry import get_spec


@functools.cache
def _profile(name: str) -> Profile:
    """The default profile of a model, computed once for the whole file."""
    return profile_model(name)

# name: (params, GMACs to torchvision's 3 decimals)
TORCHVISION = {
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_large": (5_483_032, 0.217),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "shufflenet_v2_x0_5": (1_366_792, 0.040),
    "shufflenet_v2_x1_0": (2_278_604, 0.145),
    "shufflenet_v2_x1_5": (3_503_624, 0.296),
    "shufflenet_v2_x2_0": (7_393_996, 0.583),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_params_and_macs(name: str) -> None:
    params, gmacs = TORCHVISION[name]
    p = _profile(name)
    assert p.resolution == 224
    assert p.params == params
    assert abs(p.macs / 1e9 - gmacs) <= 0.0005  # within torchvision's rounding
    assert round(p.macs / 1e9, 2) == round(gmacs, 2)  # the docs' 2-decimal figure


@pytest.mark.parametrize("alpha", [0.5, 1.0, 1.5, 2.0])
def test_shufflenet_v2_alpha_is_the_named_width(alpha: float) -> None:
    named = f"shufflenet_v2_x{alpha:.1f}".replace(".", "_")
    with torch.device("meta"):
        general = create_model("shufflenet_v2", alpha=alpha)
        fixed = create_model(named)
    assert [(k, v.shape) for k, v in general.state_dict().items()] == \
        [(k, v.shape) for k, v in fixed.state_dict().items()]


@pytest.mark.parametrize("alpha", [0.75, 1.25, 3.0])
def test_shufflenet_v2_other_alpha_is_an_error(alpha: float) -> None:
    with pytest.raises(EdgeCNNError, match=r"0\.5, 1\.0, 1\.5, 2\.0"):
        create_model("shufflenet_v2", alpha=alpha)


def test_shufflenet_named_widths_have_no_alpha() -> None:
    assert get_spec("shufflenet_v2").has_alpha
    assert not get_spec("shufflenet_v2_x1_0").has_alpha
    with pytest.raises(EdgeCNNError, match="no width multiplier"):
        create_model("shufflenet_v2_x1_0", alpha=0.5)


# TF-slim's table: alpha -> (params M, {resolution: MACs M}); the 192-96 columns of 0.75 and
# 0.5 (153/107/69/39, 71/50/32/18) match as well, left out to keep this file fast.
TF_SLIM_V2 = {
    1.4: (6.06, {224: 582}),
    1.3: (5.34, {224: 509}),
    1.0: (3.47, {224: 300, 192: 221, 160: 154, 128: 99, 96: 56}),
    0.75: (2.61, {224: 209}),
    0.5: (1.95, {224: 97}),
    0.35: (1.66, {224: 59, 192: 43, 160: 30, 128: 20, 96: 11}),
}


@pytest.mark.parametrize("alpha", sorted(TF_SLIM_V2))
def test_mobilenet_v2_alpha_matches_tf_slim(alpha: float) -> None:
    params_m, macs_m = TF_SLIM_V2[alpha]
    with torch.device("meta"):
        model = create_model("mobilenet_v2", alpha=alpha, num_classes=1001)
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
             for p in m.parameters())
    assert round((sum(p.numel() for p in model.parameters()) - bn) / 1e6, 2) == params_m
    for resolution, ref in macs_m.items():
        _, macs, _ = count_module(model, resolution)
        assert int(macs / 1e6) == ref, (alpha, resolution, macs)  # truncated, as the table


def test_counting_leaves_a_real_model_as_it_was() -> None:
    """count_module passes BatchNorm through for the meta pass (profile.py): the caller's
    model, on the CPU with statistics, computes what it did before, in the mode it was in."""
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", alpha=0.25, num_classes=10)
    model.train()(torch.randn(4, 3, 32, 32))  # running statistics away from their defaults
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        model.train()
        count_module(model, 32)
        assert model.training
        assert all("forward" not in vars(m) for m in model.modules())
        assert torch.equal(model.eval()(x), before)


def test_counting_still_checks_batchnorm_widths() -> None:
    """A BatchNorm left with the wrong width (a pruning bug) fails the count, as a real
    BatchNorm would, and the model is left as it was."""
    bad = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(6))
    with pytest.raises(RuntimeError, match="BatchNorm2d"):
        count_module(bad, 16, in_chans=3)
    assert "forward" not in vars(bad[1]) and bad.training


def test_mobilenet_v2_paper_table_4() -> None:
    # Paper: 3.4M params and 300M MAdds at alpha 1 (its 1.4 row, 6.9M / 585M, disagrees
    # with the authors' own release, 6.06M / 582M, tested above).
    p = _profile("mobilenet_v2")
    assert 3.4e6 <= p.params < 3.55e6 and round(p.macs / 1e6, -1) == 300


def test_mobilenet_v2_width_rounding() -> None:
    with torch.device("meta"):
        small = create_model("mobilenet_v2", alpha=0.35)
        wide = create_model("mobilenet_v2", alpha=1.4)
    # The last conv keeps 1280 channels below alpha 1 and grows above it.
    assert small.classifier.in_features == 1280
    assert wide.classifier.in_features == 1792
    # Every width is a multiple of 8: 32 * 0.35 = 11.2 -> 16 (rounding down would lose >10%).
    assert small.features[0][0].out_channels == 16
    assert all(m.out_channels % 8 == 0 for m in small.modules() if isinstance(m, nn.Conv2d)
               and m.out_channels != 1000)


def test_mobilenet_v2_blocks() -> None:
    with torch.device("meta"):
        model = create_model("mobilenet_v2")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    assert [b.use_residual for b in blocks].count(True) == 10  # the n - 1 repeats
    assert not any(isinstance(m, nn.ReLU6) for m in blocks[1].block[-1])  # linear bottleneck


def test_mobilenet_v3_configuration() -> None:
    with torch.device("meta"):
        large = create_model("mobilenet_v3_large")
        small = create_model("mobilenet_v3_small")
    for model, hidden, last_conv in ((large, 1280, 960), (small, 1024, 576)):
        assert model.classifier[0].in_features == last_conv
        assert model.classifier[0].out_features == hidden
        assert isinstance(model.classifier[1], nn.Hardswish)
        assert model.classifier[2].p == 0.2
        assert isinstance(model.features[0][2], nn.Hardswish)
        for block in (m for m in model.modules() if isinstance(m, InvertedResidual)):
            exp = block.block[-1][0].in_channels
            se = [m for m in block.block if m.__class__.__name__ == "SqueezeExcitation"]
            for m in se:  # make_divisible(exp // 4, 8) squeeze channels, hard-sigmoid gate
                assert m.fc1.out_channels == make_divisible(exp // 4, 8)
                assert isinstance(m.gate, nn.Hardsigmoid)
    bn = next(m for m in large.modules() if isinstance(m, nn.BatchNorm2d))
    assert (bn.eps, bn.momentum) == (0.001, 0.01)
    se_blocks = [m for m in small.modules() if m.__class__.__name__ == "SqueezeExcitation"]
    assert len(se_blocks) == 9 and se_blocks[0].fc1.out_channels == 8  # 16 // 4 -> 8


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_mobilenet_v3_options(name: str) -> None:
    base = _profile(name)
    reduced = profile_model(name, reduced_tail=True)
    dilated = profile_model(name, dilated=True)
    assert reduced.params < base.params and reduced.macs < base.macs
    # Dilation trades the last stride for a wider receptive field: same weights, 4x the
    # work in the last stage, output stride 16 instead of 32.
    assert dilated.params == base.params and dilated.macs > base.macs
    with torch.device("meta"):
        model = create_model(name, dilated=True, reduced_tail=True)
        x = torch.empty(1, 3, 224, 224)
        assert model.features(x).shape[-2:] == (14, 14)
    hidden = 1280 if name.endswith("large") else 1024
    assert model.classifier[0].out_features == hidden // 2
    half = profile_model(name, alpha=0.5)
    assert half.params < base.params and half.macs < base.macs


@pytest.mark.parametrize("kwargs", [{"reduced_tail": "yes"}, {"dilated": 1},
                                    {"dropout": 1.5}, {"se": False}])
def test_mobilenet_v3_bad_options(kwargs: dict) -> None:
    with pytest.raises(EdgeCNNError):
        create_model("mobilenet_v3_small", **kwargs)


def test_mobilenet_v2_bad_dropout() -> None:
    with pytest.raises(EdgeCNNError, match="dropout"):
        create_model("mobilenet_v2", dropout=-0.1)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_runs_at_min_resolution(name: str) -> None:
    spec = get_spec(name)
    assert spec.min_resolution == 32 and spec.resolution == 224
    model = create_model(name, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(EdgeCNNError, match="at least 32x32"):
        model(torch.randn(1, 3, 31, 31))


def test_channel_shuffle() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)  # groups [0 1 2] [3 4 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(channel_shuffle(x, 2), 3).flatten().tolist() == list(range(6))


def test_shuffle_block() -> None:
    unit = ShuffleV2Block(48, 48).eval()
    x = torch.randn(2, 48, 8, 8)
    with torch.no_grad():
        y = unit(x)
    # The untouched half comes out at the even channels after the shuffle.
    assert torch.equal(y[:, 0::2], x[:, :24])
    assert ShuffleV2Block(24, 116, stride=2)(torch.randn(2, 24, 8, 8)).shape == (2, 116, 4, 4)
    with pytest.raises(EdgeCNNError):
        ShuffleV2Block(24, 48, stride=1)
    with pytest.raises(EdgeCNNError):
        ShuffleV2Block(24, 47, stride=2)


def test_inverted_residual_shortcut() -> None:
    assert InvertedResidual(16, 16, 96).use_residual
    assert not InvertedResidual(16, 24, 96).use_residual
    assert not InvertedResidual(16, 16, 96, stride=2).use_residual
    assert len(InvertedResidual(16, 16, 16).block) == 2  # no expansion when t = 1
    with pytest.raises(EdgeCNNError):
        InvertedResidual(16, 16, 96, stride=3)
