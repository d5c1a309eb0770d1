"""The ResNet family: ResNet, ResNeXt, SE-ResNet, pre-activation ResNet, stochastic depth.

Reference figures: torchvision's model docs (exact params, GFLOPS at 224 = our MACs) for
ResNet and ResNeXt; Cadene's pretrainedmodels / timm `seresnet50` for SE-ResNet-50.
Counts are taken on the meta device; the few real forwards use tiny inputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgecnn
from edgecnn import EdgeCNNError, create_model, profile_model
from edgecnn.layers.conv import SqueezeExcitation
from edgecnn.layers.residual import BasicBlock, Bottleneck, DropPath, PreActBasicBlock
from edgecnn.layers.residual import PreActBottleneck, survival_probs
from edgecnn.models.resnet import DEPTHS, ResNet
from edgecnn.profile import count_module

# name: (params, GMACs at 224 px), torchvision's documented figures
TORCHVISION = {
    "resnet18": (11_689_512, 1.81),
    "resnet34": (21_797_672, 3.66),
    "resnet50": (25_557_032, 4.09),
    "resnet101": (44_549_160, 7.80),
    "resnet152": (60_192_808, 11.51),
    "resnext50_32x4d": (25_028_904, 4.23),
    "resnext101_32x8d": (88_791_336, 16.41),
}
SE_RESNET50_PARAMS = 28_088_024  # Cadene's pretrainedmodels se_resnet50, timm seresnet50
PREACT = ["preact_resnet18", "preact_resnet34", "preact_resnet50", "preact_resnet101",
          "preact_resnet152", "preact_resnet200"]
ALL = [*TORCHVISION, "se_resnet50", *PREACT]


def _conv_linear_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _meta(cls: type[nn.Module], *args: object, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return cls(*args, **kwargs)


def _model(name: str, **kwargs: object) -> nn.Module:
    """A zoo model on the meta device: shapes only, no memory, no init arithmetic."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(name: str, **kwargs: object) -> int:
    return sum(p.numel() for p in _model(name, **kwargs).parameters())


def _units(model: nn.Module) -> list[nn.Module]:
    kinds = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)
    return [m for m in model.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_params_and_macs(name: str) -> None:
    params, gmacs = TORCHVISION[name]
    prof = profile_model(name)
    assert prof.params == params
    assert prof.macs / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_se_resnet50_matches_the_reference() -> None:
    prof = profile_model("se_resnet50")
    assert prof.params == SE_RESNET50_PARAMS
    # SE adds only its two 1x1 convs per unit: resnet50's MACs plus a fraction of a percent
    assert prof.macs == pytest.approx(profile_model("resnet50").macs, rel=0.002)
    assert _params("resnet50", se_reduction=16) == SE_RESNET50_PARAMS


def test_se_on_every_block_kind() -> None:
    # SE on a C-channel branch with ratio r: C*(C//r) + C//r + (C//r)*C + C parameters.
    def se_params(blocks: tuple[int, ...], widths: tuple[int, ...], r: int) -> int:
        return sum(n * (2 * c * (c // r) + c // r + c) for n, c in zip(blocks, widths))

    assert _params("resnet18", se_reduction=16) == TORCHVISION["resnet18"][0] + se_params(
        DEPTHS[18], (64, 128, 256, 512), 16)
    assert _params("resnet50", se_reduction=8) == TORCHVISION["resnet50"][0] + se_params(
        DEPTHS[50], (256, 512, 1024, 2048), 8)
    for name in ("resnext50_32x4d", "preact_resnet34", "preact_resnet50"):
        assert _params(name, se_reduction=16) > _params(name)
    unit = _model("se_resnet50").features.stage1[0]
    assert isinstance(unit.se, SqueezeExcitation)
    assert unit.se.fc1.out_channels == 256 // 16 and unit.se.fc1.bias is not None


@pytest.mark.parametrize("value", [0, -4, 1.5, True, "16"])
def test_bad_se_reduction(value: object) -> None:
    with pytest.raises(EdgeCNNError, match="se_reduction"):
        create_model("resnet18", se_reduction=value)


def test_se_reduction_too_large_and_none_on_se_resnet() -> None:
    with pytest.raises(EdgeCNNError, match="zero channels"):
        _model("resnet18", se_reduction=128)
    with pytest.raises(EdgeCNNError, match="resnet50"):
        _model("se_resnet50", se_reduction=None)


def test_resnext_cardinality_and_width() -> None:
    # 1 group of width 64 is ResNet-50; the grouped 3x3 conv has C x d channels.
    assert _params("resnext50_32x4d", groups=1, width_per_group=64) == TORCHVISION[
        "resnet50"][0]
    model = _model("resnext50_32x4d", groups=8, width_per_group=16)
    conv = model.features.stage1[0].branch[1][0]
    assert (conv.groups, conv.out_channels) == (8, 128)
    assert _params("resnext50_32x4d", groups=64) > TORCHVISION["resnext50_32x4d"][0]


@pytest.mark.parametrize("option", [{"groups": 0}, {"width_per_group": -1},
                                    {"groups": 2.0}, {"width_per_group": True}])
def test_bad_cardinality(option: dict[str, object]) -> None:
    with pytest.raises(EdgeCNNError):
        _model("resnext50_32x4d", **option)


def test_basic_blocks_have_no_cardinality() -> None:
    with pytest.raises(EdgeCNNError, match="basic blocks"):
        _meta(ResNet, BasicBlock, DEPTHS[18], groups=32, width_per_group=4)


def test_unknown_option_is_a_user_error() -> None:
    with pytest.raises(EdgeCNNError, match="drop_rate"):
        _model("resnet50", drop_rate=0.1)
    with pytest.raises(EdgeCNNError, match="groups"):
        _model("resnet50", groups=32)  # cardinality is ResNeXt's option


def test_declared_resolutions() -> None:
    for name in ALL:
        spec = edgecnn.get_spec(name)
        assert (spec.resolution, spec.min_resolution) == (224, 32)
    assert set(edgecnn.list_models("*res*")) >= set(ALL)


# Deeper members downsample exactly like these (stem /4, three stride-2 stages).
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "se_resnet50",
                                  "preact_resnet18", "preact_resnet50"])
def test_runs_at_min_resolution(name: str) -> None:
    spec = edgecnn.get_spec(name)
    # the meta device checks every shape: the last map is 1x1 at 32 px
    model = _model(name).eval()
    x = torch.empty(1, 3, spec.min_resolution, spec.min_resolution, device="meta")
    assert model(x).shape == (1, 1000)


def test_real_forward_at_min_resolution() -> None:
    for name in ("resnet18", "preact_resnet18"):
        model = create_model(name, num_classes=7).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)


# --- pre-activation ResNet ----------------------------------------------------------------

# Our totals (no torchvision reference): the post-activation counts minus the BN moves.
PREACT_PARAMS = {18: 11_687_720, 34: 21_795_880, 50: 25_549_352, 101: 44_541_480,
                 152: 60_185_128, 200: 64_666_152}


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_preact_convs_equal_post_activation_convs(depth: int) -> None:
    post = _meta(ResNet, Bottleneck if depth >= 50 else BasicBlock, DEPTHS[depth])
    pre = _model(f"preact_resnet{depth}")
    assert _conv_linear_weights(pre) == _conv_linear_weights(post)
    assert sum(p.numel() for p in pre.parameters()) == PREACT_PARAMS[depth]
    if depth in (18, 50):  # the same convolutions at the same shapes: the same MACs exactly
        assert count_module(pre, 224)[1] == count_module(post, 224)[1]


def test_preact_resnet200_matches_the_paper_size() -> None:
    # fb.resnet.torch's pre-activation ResNet-200 is ~64.7M
    assert PREACT_PARAMS[200] == pytest.approx(64.7e6, rel=0.001)


def test_preact_layout() -> None:
    model = _model("preact_resnet50")
    units = _units(model)
    assert len(units) == sum(DEPTHS[50])
    # The stem ends in BN-ReLU, so the first unit has no own pre-activation; all others do.
    assert isinstance(units[0].preact, nn.Identity)
    for unit in units[1:]:
        assert isinstance(unit.preact[0], nn.BatchNorm2d) and isinstance(unit.preact[1], nn.ReLU)
    # BN -> ReLU -> conv inside the branch, no BN at its end, no BN on the projection
    for seq in units[5].branch[1:]:
        assert [type(m) for m in seq] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    assert isinstance(units[0].downsample, nn.Conv2d)
    # a final BN + ReLU before the global pooling
    names = list(dict(model.features.named_children()))
    assert names[-2:] == ["norm", "act"]
    assert isinstance(model.features.norm, nn.BatchNorm2d)
    assert model.features.norm.num_features == 2048


def test_preact_identity_path_is_clean() -> None:
    # Nothing after the addition: a unit whose branch is zero passes x through untouched.
    unit = PreActBasicBlock(8, 8).eval()
    unit.zero_init_last()
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(unit(x), x)


# --- zero-init of the last BN (conv for pre-activation) of every branch -------------------

def test_zero_init_residual() -> None:
    model = create_model("resnet18", zero_init_residual=True)
    for unit in _units(model):
        assert torch.count_nonzero(unit.branch[-1][1].weight) == 0  # the last BN's scale
    assert torch.count_nonzero(create_model("resnet18").features.stage1[0].branch[-1][1].weight)
    for unit in _units(create_model("preact_resnet18", zero_init_residual=True)):
        assert torch.count_nonzero(unit.branch[-1][-1].weight) == 0  # the last conv
    # A post-activation unit then computes ReLU(shortcut): identity shortcut -> ReLU(x).
    unit = Bottleneck(32, 8).eval()
    unit.zero_init_last()
    x = torch.randn(2, 32, 4, 4)
    assert torch.equal(unit(x), torch.relu(x))


# --- stochastic depth ---------------------------------------------------------------------

def test_survival_probabilities_decay_linearly() -> None:
    probs = survival_probs(16, 0.5)
    assert probs[0] == pytest.approx(1 - 0.5 / 16) and probs[-1] == pytest.approx(0.5)
    steps = [a - b for a, b in zip(probs, probs[1:])]
    assert steps == pytest.approx([0.5 / 16] * 15)
    assert survival_probs(4, None) == [1.0] * 4

    model = _model("resnet50", stochastic_depth=0.5)
    drops = [unit.drop_path for unit in _units(model)]
    assert all(isinstance(d, DropPath) for d in drops)
    model_probs = [d.survival_prob for d in drops]
    assert model_probs == pytest.approx(probs)
    assert max(model_probs) == model_probs[0]
    # No option: no DropPath anywhere, the plain network.
    assert not any(isinstance(m, DropPath) for m in _model("resnet50").modules())


@pytest.mark.parametrize("name", ["resnet18", "se_resnet50", "resnext50_32x4d",
                                  "preact_resnet200"])
def test_stochastic_depth_on_every_member(name: str) -> None:
    model = _model(name, stochastic_depth=0.8)
    drops = [m for m in model.modules() if isinstance(m, DropPath)]
    assert len(drops) == len(_units(model))
    assert drops[-1].survival_prob == pytest.approx(0.8)


@pytest.mark.parametrize("value", [0, 0.0, -0.5, 1.5, True, "0.5"])
def test_bad_stochastic_depth(value: object) -> None:
    with pytest.raises(EdgeCNNError, match="stochastic_depth"):
        profile_model("resnet18", stochastic_depth=value)


@pytest.mark.parametrize("name", ["resnet18", "preact_resnet18"])
def test_stochastic_depth_eval_is_identity_train_drops(name: str) -> None:
    torch.manual_seed(0)
    plain = create_model(name, num_classes=10)
    sd = create_model(name, num_classes=10, stochastic_depth=0.05)
    sd.load_state_dict(plain.state_dict())  # DropPath holds no state
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), sd.eval()
    with torch.no_grad():
        out = sd(x)
        assert torch.equal(out, sd(x))  # deterministic
        assert torch.equal(out, plain(x))  # and exactly the network without the option
        sd.train()
        outs = [sd(x) for _ in range(3)]
    assert not all(torch.equal(outs[0], o) for o in outs[1:])


def test_drop_path_per_sample_with_rescaling() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.25).train()
    y = drop(torch.ones(64, 3, 2, 2))
    per_sample = y.flatten(1)
    # each sample is either dropped whole or kept and scaled by 1 / p
    assert torch.all((per_sample == 0).all(1) | (per_sample == 4).all(1))
    assert 0 < int((per_sample == 0).all(1).sum()) < 64
    assert torch.equal(drop.eval()(torch.ones(3, 3)), torch.ones(3, 3))
    with pytest.raises(EdgeCNNError):
        DropPath(0.0)
