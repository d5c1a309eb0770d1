"""The squeeze families against their published figures: SqueezeNet 1.0/1.1 and SqueezeNext.

References:
- torchvision's SqueezeNet weights tables (params exact; "GFLOPS" 0.82 / 0.35 at 224 px,
  which torchvision counts as multiply-adds);
- Gholami et al., SqueezeNext, arXiv:1803.10615, Table 1 parameter counts, printed in
  millions to 0.01M (0.72M, 0.54M) or 0.1M;
- the authors' Caffe prototxts (github.com/amirgholami/SqueezeNext, and the 2.0-SqNxt-44
  prototxt kept in jolibrain/deepdetect): trainable parameters counted layer by layer
  (conv weights, BN scale and shift, the bias-free fc1000), exact.
Everything is counted on the meta device except the min_resolution forward passes.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from edgecnn import create_model, profile_model
from edgecnn.errors import EdgeCNNError
from edgecnn.layers.fire import Fire
from edgecnn.layers.sqnxt import SqNxtBlock


class TorchvisionRef(NamedTuple):
    name: str
    params: int  # exact
    gmacs: float  # torchvision's "GFLOPS" at 224 px (multiply-adds), 2 decimals


TORCHVISION = (
    TorchvisionRef("squeezenet", 1_248_424, 0.82),
    TorchvisionRef("squeezenet1_1", 1_235_496, 0.35),
)


class PaperRef(NamedTuple):
    name: str
    alpha: float
    groups: int
    params_m: float  # Table 1 of the SqueezeNext paper, millions, as printed
    decimals: int  # its precision


# name, alpha, groups, params (M), decimals
SQNXT_PAPER = (
    PaperRef("squeezenext23", 1.0, 1, 0.72, 2),
    PaperRef("squeezenext23", 1.0, 2, 0.54, 2),  # G-SqNxt-23
    PaperRef("squeezenext34", 1.0, 1, 1.0, 1),
    PaperRef("squeezenext44", 1.0, 1, 1.2, 1),
    PaperRef("squeezenext23", 1.5, 1, 1.4, 1),
    PaperRef("squeezenext34", 1.5, 1, 2.1, 1),
    PaperRef("squeezenext44", 1.5, 1, 2.6, 1),
    PaperRef("squeezenext23", 2.0, 1, 2.4, 1),
    PaperRef("squeezenext34", 2.0, 1, 3.8, 1),
    PaperRef("squeezenext44", 2.0, 1, 4.4, 1),
    PaperRef("squeezenext23v5", 2.0, 1, 3.2, 1),
)

# Rows our (prototxt-faithful) networks miss at the paper's precision, and why.
KNOWN_MISMATCHES = {
    ("squeezenext34", 1.0): "no public SqNxt-34 definition: [9, 9, 12, 2] gives 1.05M",
    ("squeezenext34", 1.5): "no public SqNxt-34 definition: [9, 9, 12, 2] gives 2.16M",
    ("squeezenext34", 2.0): "no public SqNxt-34 definition: [9, 9, 12, 2] gives 3.69M; no "
                            "layout reaches 1.0M / 2.1M / 3.8M together under one alpha",
    ("squeezenext23v5", 2.0): "the authors' 2.0-SqNxt-23v5 prototxt itself counts 3.14M",
}


class PrototxtRef(NamedTuple):
    name: str
    alpha: float
    groups: int
    params: int  # trainable parameters of the authors' prototxt
    source: str


PROTOTXT = (
    PrototxtRef("squeezenext23", 1.0, 1, 717_280, "amirgholami/SqueezeNext 1.0-SqNxt-23"),
    PrototxtRef("squeezenext23", 1.0, 2, 543_072, "amirgholami/SqueezeNext 1.0-G-SqNxt-23"),
    PrototxtRef("squeezenext23v5", 1.0, 1, 913_632, "amirgholami/SqueezeNext 1.0-SqNxt-23v5"),
    PrototxtRef("squeezenext23", 2.0, 1, 2_361_728, "amirgholami/SqueezeNext 2.0-SqNxt-23"),
    PrototxtRef("squeezenext23v5", 2.0, 1, 3_141_504, "amirgholami/SqueezeNext 2.0-SqNxt-23v5"),
    PrototxtRef("squeezenext44", 2.0, 1, 4_428_096, "jolibrain/deepdetect squeezenext_2_44"),
)

SQUEEZE_NAMES = ("squeezenet", "squeezenet1_1", "squeezenext23", "squeezenext23v5",
                 "squeezenext34", "squeezenext44")


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(name: str, **kwargs: object) -> int:
    # What profile_model reports, without its (slow) meta forward pass.
    return sum(p.numel() for p in _meta(name, **kwargs).parameters())


# --- reference figures -------------------------------------------------------------------


@pytest.mark.parametrize("ref", TORCHVISION, ids=lambda r: r.name)
def test_squeezenet_matches_torchvision(ref: TorchvisionRef) -> None:
    prof = profile_model(ref.name, resolution=224)
    assert prof.params == ref.params
    assert prof.macs == pytest.approx(ref.gmacs * 1e9, rel=0.01)


def _paper_cases() -> list[object]:
    cases = []
    for ref in SQNXT_PAPER:
        reason = KNOWN_MISMATCHES.get((ref.name, ref.alpha))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(ref, marks=marks, id=f"{ref.alpha}-{ref.name}-g{ref.groups}"))
    return cases


@pytest.mark.parametrize("ref", _paper_cases())
def test_squeezenext_matches_paper_table(ref: PaperRef) -> None:
    params = _params(ref.name, alpha=ref.alpha, groups=ref.groups)
    assert round(params / 1e6, ref.decimals) == pytest.approx(ref.params_m)


@pytest.mark.parametrize("ref", SQNXT_PAPER, ids=lambda r: f"{r.alpha}-{r.name}-g{r.groups}")
def test_squeezenext_close_to_paper(ref: PaperRef) -> None:
    # Even the known mismatches stay close: within 5%, or one unit of the printed digit.
    params = _params(ref.name, alpha=ref.alpha, groups=ref.groups)
    tolerance = max(0.05 * ref.params_m, 10.0 ** -ref.decimals)
    assert abs(params / 1e6 - ref.params_m) <= tolerance


@pytest.mark.parametrize("ref", PROTOTXT, ids=lambda r: r.source.split()[-1])
def test_squeezenext_matches_authors_prototxt(ref: PrototxtRef) -> None:
    assert _params(ref.name, alpha=ref.alpha, groups=ref.groups) == ref.params


def test_squeezenext_feature_maps_follow_caffe() -> None:
    # 227 px: 7x7/2 without padding -> 111, ceil-mode 3x3/2 pool -> 55, then 28, 14, 7.
    model = _meta("squeezenext23")
    sizes: list[int] = []
    hooks = [s.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for s in (model.stem, *model.stages)]
    with torch.no_grad():
        model(torch.empty(1, 3, 227, 227, device="meta"))
    for h in hooks:
        h.remove()
    assert sizes == [55, 55, 28, 14, 7]


def test_squeezenext_macs() -> None:
    # No paper MAC figure to hold it to (see the project notes): pin our count, and check it
    # by hand for the stem and the head, which dominate the network's shape bookkeeping.
    prof = profile_model("squeezenext23", per_layer=True)
    assert prof.macs == 277_999_808
    layers = {layer.name: layer.macs for layer in prof.layers}
    assert layers["stem.0.0"] == 3 * 64 * 49 * 111 * 111
    assert layers["head.0"] == 256 * 128 * 7 * 7
    assert profile_model("squeezenext23", groups=2).macs < 0.85 * prof.macs


# --- SqueezeNet options ------------------------------------------------------------------


def _fires(model: nn.Module) -> list[Fire]:
    return [m for m in model.modules() if isinstance(m, Fire)]


def _widths(model: nn.Module) -> list[tuple[int, int, int]]:
    return [(f.squeeze[0].out_channels, f.expand1x1[0].out_channels,
             f.expand3x3[0].out_channels) for f in _fires(model)]


# Table 1 of the SqueezeNet paper: s1x1, e1x1, e3x3 of fire2 .. fire9.
SQUEEZENET_TABLE1 = [(16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
                     (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]


@pytest.mark.parametrize("name", ["squeezenet", "squeezenet1_1"])
def test_default_metaparameters_give_table1(name: str) -> None:
    assert _widths(_meta(name)) == SQUEEZENET_TABLE1


def test_metaparameters_change_the_fire_widths() -> None:
    # Section 5: e_i = base_e + incr_e * floor(i / freq), s = SR * e_i, e3 = pct_3x3 * e_i.
    widths = _widths(_meta("squeezenet", sr=0.25, pct_3x3=0.75))
    assert widths[0] == (32, 32, 96) and widths[-1] == (128, 128, 384)
    widths = _widths(_meta("squeezenet", base_e=64, incr_e=32, freq=1))
    assert [s + e1 + e3 - s for s, e1, e3 in widths] == [64 + 32 * i for i in range(8)]
    assert _params("squeezenet", sr=0.75) > _params("squeezenet")


def test_simple_bypass_is_free_and_wraps_matching_fires() -> None:
    model = _meta("squeezenet", bypass="simple")
    kinds = [type(f.bypass).__name__ for f in _fires(model)]
    assert kinds == ["NoneType", "Identity"] * 4  # fire3, fire5, fire7, fire9
    assert _params("squeezenet", bypass="simple") == 1_248_424


def test_complex_bypass_adds_1x1_convs_with_bias() -> None:
    model = _meta("squeezenet", bypass="complex")
    kinds = [type(f.bypass).__name__ for f in _fires(model)]
    assert kinds == ["Conv2d", "Identity"] * 4
    # fire2 96->128, fire4 128->256, fire6 256->384, fire8 384->512, weights and biases.
    extra = sum(c_in * c_out + c_out for c_in, c_out in
                ((96, 128), (128, 256), (256, 384), (384, 512)))
    assert _params("squeezenet", bypass="complex") == 1_248_424 + extra


def test_alpha_scales_fire_widths_only() -> None:
    model = _meta("squeezenet", alpha=0.5)
    assert _widths(model) == [(s // 2, e1 // 2, e3 // 2) for s, e1, e3 in SQUEEZENET_TABLE1]
    assert model.features[0].out_channels == 96  # conv1 keeps the paper's width
    assert _params("squeezenet", alpha=1.0) == 1_248_424


# --- SqueezeNext options -----------------------------------------------------------------


def _blocks(model: nn.Module) -> list[SqNxtBlock]:
    return [m for m in model.modules() if isinstance(m, SqNxtBlock)]


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0])
def test_alpha_scales_the_stages_not_stem_or_head(alpha: float) -> None:
    model = _meta("squeezenext23", alpha=alpha)
    widths = [stage[0].out_channels for stage in model.stages]
    assert widths == [int(c * alpha) for c in (32, 64, 128, 256)]
    assert model.stem[0].out_channels == 64 and model.head.out_channels == 128


@pytest.mark.parametrize("name, depths", [("squeezenext23", [6, 6, 8, 1]),
                                          ("squeezenext23v5", [2, 4, 14, 1]),
                                          ("squeezenext34", [9, 9, 12, 2]),
                                          ("squeezenext44", [12, 12, 16, 2])])
def test_blocks_per_stage_and_projections(name: str, depths: list[int]) -> None:
    model = _meta(name)
    assert [len(stage) for stage in model.stages] == depths
    for stage in model.stages:  # a projection opens every stage, identities follow
        kinds = [type(block.shortcut).__name__ for block in stage]
        assert kinds == ["ConvNormAct"] + ["Identity"] * (len(stage) - 1)


def test_block_widths_follow_the_prototxt() -> None:
    # First block 64 -> 32: squeezes to 16 then 8 (1/2 and 1/4 of its output).
    first = _blocks(_meta("squeezenext23"))[0]
    assert [layer[0].out_channels for layer in first.body] == [16, 8, 16, 16, 32]
    assert first.body[0][0].in_channels == 64


def test_separable_conv_order_alternates() -> None:
    kernels = [tuple(b.body[2][0].kernel_size) for b in _blocks(_meta("squeezenext23"))]
    assert kernels[:4] == [(3, 1), (1, 3), (3, 1), (1, 3)]


def test_grouped_variant_groups_first_squeeze_and_separable_convs() -> None:
    block = _blocks(_meta("squeezenext23", groups=2))[1]
    assert [layer[0].groups for layer in block.body] == [2, 1, 2, 2, 1]


# --- resolution and errors ----------------------------------------------------------------


@pytest.mark.parametrize("name", SQUEEZE_NAMES)
def test_runs_at_min_resolution(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    side = model.spec.min_resolution
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side)).shape == (1, 7)
    with pytest.raises(EdgeCNNError):
        model(torch.randn(1, 3, side - 1, side - 1))


def test_declared_resolutions() -> None:
    assert _meta("squeezenet").spec.resolution == 224  # torchvision; the paper crops 227
    assert _meta("squeezenext23").spec.resolution == 227


@pytest.mark.parametrize("kwargs", [
    {"bypass": "residual"}, {"pct_3x3": 0}, {"pct_3x3": 1.0}, {"pct_3x3": True},
    {"sr": 0}, {"sr": 1.5}, {"freq": 0}, {"base_e": 0}, {"incr_e": -1}, {"dropout": 1.0},
    {"base_e": 8, "sr": 0.1},  # a squeeze layer of no channels
])
def test_squeezenet_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(EdgeCNNError):
        _meta("squeezenet", **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"groups": 0}, {"groups": 3}, {"groups": 1.5}, {"alpha": 0.01}, {"bypass": "simple"},
])
def test_squeezenext_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(EdgeCNNError):
        _meta("squeezenext23", **kwargs)
