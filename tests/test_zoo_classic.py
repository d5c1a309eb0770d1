"""The classic families: LeNet-5, AlexNet, VGG, GoogLeNet and DenseNet.

Parameter counts are torchvision's to the unit (or the paper's, for LeNet-5); MACs are within
1% of torchvision's documented GFLOPS at 224 px. Everything is built on the meta device
except the few tiny numerical checks.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgecnn import EdgeCNNError, create_model, get_spec, profile_model
from edgecnn.layers.dense import DenseLayer, Transition
from edgecnn.layers.inception import Inception
from edgecnn.models.googlenet import GoogLeNetOutputs

# name: (params, reference GMACs or None). torchvision's model docs (GFLOPS there = GMACs).
REFERENCE = {
    "lenet5": (61_706, None),
    "alexnet": (61_100_840, 0.71),
    "vgg11": (132_863_336, 7.61),
    "vgg11_bn": (132_868_840, 7.61),
    "vgg13": (133_047_848, 11.31),
    "vgg13_bn": (133_053_736, 11.31),
    "vgg16": (138_357_544, 15.47),
    "vgg16_bn": (138_365_992, 15.47),
    "vgg19": (143_667_240, 19.63),
    "vgg19_bn": (143_678_248, 19.63),
    "googlenet": (6_624_904, 1.50),
    "densenet121": (7_978_856, 2.83),
    "densenet169": (14_149_480, 3.36),
    "densenet201": (20_013_928, 4.29),
    "densenet264": (33_337_704, None),  # no torchvision model: see test_densenet_params_formula
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_params_and_macs_match_reference(name: str) -> None:
    params, gmacs = REFERENCE[name]
    prof = profile_model(name)
    assert prof.resolution == (32 if name == "lenet5" else 224)
    assert prof.params == params
    if gmacs is not None:
        assert prof.macs / 1e9 == pytest.approx(gmacs, rel=0.01)


def _runs(model: nn.Module, resolution: int, batch: int) -> bool:
    x = torch.empty(batch, model.config["in_chans"], resolution, resolution, device="meta")
    try:
        with torch.no_grad():
            model.forward(x)  # .forward skips the registry's input-size check
    except (RuntimeError, ValueError):
        return False
    return True


# Where eval mode alone would run lower: the last stage at 1x1, BN fed one value per image.
EVAL_FLOOR = {"lenet5": 16, "googlenet": 15, "densenet121": 29}


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11", "vgg19_bn", "googlenet",
                                  "densenet121"])
def test_min_resolution_is_the_smallest_that_trains_at_batch_1(name: str) -> None:
    side = get_spec(name).min_resolution
    with torch.device("meta"):
        model = create_model(name)
    assert _runs(model.eval(), side, batch=1)
    assert _runs(model.train(), side, batch=1)
    if name == "lenet5":  # 28 is raw MNIST; smaller inputs stretch a tiny map for C5
        assert _runs(model.train(), 27, batch=1)
    else:
        assert not _runs(model.train(), side - 1, batch=1)
    floor = EVAL_FLOOR.get(name, side)
    assert _runs(model.eval(), floor, batch=1) and not _runs(model.eval(), floor - 1, batch=1)
    with pytest.raises(EdgeCNNError, match="at least"):
        model(torch.empty(1, model.config["in_chans"], side - 1, side - 1, device="meta"))


# ---------------------------------------------------------------------------------- LeNet-5


def test_lenet5_spec_and_paper_shapes() -> None:
    spec = get_spec("lenet5")
    assert (spec.in_chans, spec.num_classes, spec.resolution) == (1, 10, 32)
    assert (spec.mean, spec.std) == ((0.1307,), (0.3081,))
    model = create_model("lenet5").eval()
    shapes = {}
    for name in ("features", "pool", "c5"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
    for resolution in (32, 28):
        assert model(torch.randn(2, 1, resolution, resolution)).shape == (2, 10)
        if resolution == 32:  # the adaptive pool is the identity: the paper's S4 and C5
            assert shapes == {"features": (2, 16, 5, 5), "pool": (2, 16, 5, 5),
                              "c5": (2, 120, 1, 1)}
    assert profile_model("lenet5").macs == 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 \
        + 120 * 400 + 120 * 84 + 84 * 10
    torch.manual_seed(0)
    logits = create_model("lenet5")(torch.randn(2, 1, 28, 28))
    assert logits.abs().max() > 0.05  # LeCun init: the signal survives five tanh layers


# ---------------------------------------------------------------------------------- AlexNet


def test_alexnet_lrn_follows_the_paper() -> None:
    with torch.device("meta"):
        model, default = create_model("alexnet", lrn=True), create_model("alexnet")
    kinds = [type(m).__name__ for m in model.features]
    # conv-ReLU-LRN-pool twice, as in Section 3.5 of the paper; no LRN elsewhere.
    assert kinds[:8] == ["ConvNormAct", "LocalResponseNorm", "MaxPool2d"] * 2 + \
        ["ConvNormAct", "ConvNormAct"]
    assert kinds.count("LocalResponseNorm") == 2
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in default.modules())
    lrn = model.features[1]  # stateless: runs on CPU tensors though built on meta
    a = torch.randn(1, 8, 3, 3)
    sq = nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))  # channel window of n = 5
    window = sum(sq[:, i:i + 8] for i in range(5))
    assert torch.allclose(lrn(a), a / (2 + 1e-4 * window) ** 0.75, atol=1e-6)


def test_alexnet_pooling_option() -> None:
    def pools(**kw: bool) -> list[tuple[int, int]]:
        with torch.device("meta"):
            model = create_model("alexnet", **kw)
        return [(m.kernel_size, m.stride) for m in model.modules() if isinstance(m, nn.MaxPool2d)]

    assert pools() == [(3, 2)] * 3
    assert pools(overlapping_pool=False) == [(2, 2)] * 3
    with pytest.raises(EdgeCNNError):
        create_model("alexnet", lrn="yes")
    with pytest.raises(EdgeCNNError):
        create_model("alexnet", dropout=1.0)
    with pytest.raises(EdgeCNNError):
        create_model("alexnet", alpha=0.5)  # no width multiplier in the paper


# -------------------------------------------------------------------------------------- VGG


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_depth_counts_weight_layers(depth: int) -> None:
    for suffix, bn in (("", 0), ("_bn", 1)):
        with torch.device("meta"):
            model = create_model(f"vgg{depth}{suffix}")
        modules = list(model.modules())
        convs = [m for m in modules if isinstance(m, nn.Conv2d)]
        linears = [m for m in modules if isinstance(m, nn.Linear)]
        assert len(convs) + len(linears) == depth  # the paper's "weight layers"
        assert all(c.kernel_size == (3, 3) and c.bias is not None for c in convs)
        assert sum(isinstance(m, nn.BatchNorm2d) for m in modules) == bn * len(convs)
        assert sum(isinstance(m, nn.MaxPool2d) for m in modules) == 5


# -------------------------------------------------------------------------------- GoogLeNet


def test_googlenet_options_counts() -> None:
    assert profile_model("googlenet", aux_logits=True).params == 13_004_888  # torchvision
    paper = profile_model("googlenet", kernel_5x5=5)
    # Each "5x5" conv grows from 9 to 25 taps per (reduce, out) channel pair.
    extra = 16 * sum(r * c for r, c in [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64),
                                        (32, 64), (32, 128), (32, 128), (48, 128)])
    assert paper.params == 6_624_904 + extra == 7_005_832
    assert paper.macs / 1e9 == pytest.approx(1.58, abs=0.005)
    with pytest.raises(EdgeCNNError):
        create_model("googlenet", kernel_5x5=7)
    with pytest.raises(EdgeCNNError):
        Inception(192, 64, 96, 128, 16, 32, 32, kernel_5x5=1)


def test_googlenet_aux_heads_only_in_training() -> None:
    torch.manual_seed(0)
    model = create_model("googlenet", aux_logits=True, num_classes=7)
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [(2, 7)] * 3
    assert isinstance(model.eval()(x), torch.Tensor)
    plain = create_model("googlenet").train()
    assert isinstance(plain(x), torch.Tensor)


# --------------------------------------------------------------------------------- DenseNet


def _densenet_params(blocks: tuple[int, ...], k: int = 32, classes: int = 1000) -> int:
    """Params of DenseNet-BC counted from the paper's description, not from our modules."""
    c = 2 * k
    total = 3 * 49 * c + 2 * c  # stem conv + BN
    for i, n in enumerate(blocks):
        for _ in range(n):  # BN(c), 1x1 c->4k, BN(4k), 3x3 4k->k
            total += 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * 9 * k
            c += k
        if i < len(blocks) - 1:  # BN(c), 1x1 c->floor(c/2)
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes  # final BN + classifier


def test_densenet_params_formula() -> None:
    # The formula reproduces torchvision's three counts, which vouches for DenseNet-264's.
    for depth, blocks in ((121, (6, 12, 24, 16)), (169, (6, 12, 32, 32)),
                          (201, (6, 12, 48, 32)), (264, (6, 12, 64, 48))):
        assert _densenet_params(blocks) == REFERENCE[f"densenet{depth}"][0]
        # Weight layers: stem conv, 2 per dense layer, 3 transitions, FC. Table 1's "264"
        # configuration counts 265 this way; the name is the paper's, the table is followed.
        assert 1 + 2 * sum(blocks) + 3 + 1 == (265 if depth == 264 else depth)


def test_densenet_options_change_the_architecture() -> None:
    with torch.device("meta"):
        model = create_model("densenet121", growth_rate=12, bn_size=2, compression=0.3)
    feats = list(model.features)
    assert feats[0].out_channels == 24  # the stem has 2k channels
    assert sum(isinstance(m, Transition) for m in feats) == 3
    for i, m in enumerate(feats):
        if isinstance(m, Transition):  # floor(theta * m) channels, fed to the next block
            assert m[2].in_channels == feats[i - 1].out_channels
            assert m.out_channels == math.floor(0.3 * m[2].in_channels)
            assert feats[i + 1][0].norm1.num_features == m.out_channels
    layer = next(m for m in model.modules() if isinstance(m, DenseLayer))
    assert layer.conv1.out_channels == 24 and layer.conv2.out_channels == 12
    for bad in ({"growth_rate": 0}, {"bn_size": 1.5}, {"compression": 0.0},
                {"compression": 1.5}, {"memory_efficient": "no"}):
        with pytest.raises(EdgeCNNError):
            create_model("densenet121", **bad)


def test_densenet_memory_efficient_is_exact() -> None:
    torch.manual_seed(0)
    kw = {"growth_rate": 4, "bn_size": 2, "num_classes": 5}
    plain = create_model("densenet121", **kw)
    frugal = create_model("densenet121", memory_efficient=True, **kw)
    frugal.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    outs, saved = [], []
    for model in (plain, frugal):
        model.train()
        storages: dict[int, int] = {}  # what autograd keeps for backward, by storage

        def pack(t: torch.Tensor, storages: dict[int, int] = storages) -> torch.Tensor:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        out.square().sum().backward()
        outs.append(out)
        saved.append(sum(storages.values()))
    assert saved[1] < saved[0] / 2  # the checkpointed bottlenecks keep only their inputs
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for (name, p), q in zip(plain.named_parameters(), frugal.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=name)
    # Running statistics are updated once per step, not again by the recomputation.
    for (name, b), c in zip(plain.named_buffers(), frugal.buffers()):
        torch.testing.assert_close(c, b, rtol=0, atol=0, msg=name)
