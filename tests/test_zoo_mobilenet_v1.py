"""MobileNet v1 against the paper (Howard et al. 2017, Tables 6 and 7).

The paper publishes the width rows at 224 px and the resolution rows at alpha 1.0, in
millions of mult-adds and parameters (1000 classes). Ours must land within 2%, or, for a
parameter count printed with one significant digit (0.5M at alpha 0.25; TF-slim's exact
figure is 0.47M), within that digit's rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

import edgecnn
from edgecnn.errors import EdgeCNNError


class PaperRow(NamedTuple):
    alpha: float
    resolution: int
    macs_m: float  # million mult-adds
    params_m: float  # million parameters
    params_digits: int  # decimals printed in the paper


#         alpha  res  MACs(M)  params(M) decimals
PAPER = (
    PaperRow(1.0, 224, 569, 4.2, 1),
    PaperRow(0.75, 224, 325, 2.6, 1),
    PaperRow(0.5, 224, 149, 1.3, 1),
    PaperRow(0.25, 224, 41, 0.5, 1),
    PaperRow(1.0, 192, 418, 4.2, 1),
    PaperRow(1.0, 160, 290, 4.2, 1),
    PaperRow(1.0, 128, 186, 4.2, 1),
)


@pytest.mark.parametrize("row", PAPER, ids=lambda r: f"a{r.alpha}-r{r.resolution}")
def test_paper_grid(row: PaperRow) -> None:
    prof = edgecnn.profile_model("mobilenet", alpha=row.alpha, resolution=row.resolution)
    assert prof.macs / 1e6 == pytest.approx(row.macs_m, rel=0.02)
    params_m = prof.params / 1e6
    rounding = 0.5 * 10 ** -row.params_digits
    assert params_m == pytest.approx(row.params_m, rel=0.02) or \
        abs(params_m - row.params_m) <= rounding


def test_alpha_one_is_exact() -> None:
    prof = edgecnn.profile_model("mobilenet")
    assert (prof.params, prof.macs) == (4_231_976, 568_740_352)


def test_tf_slim_channel_rule_floors_at_eight() -> None:
    # int(32 * 0.1) = 3, but TF-slim keeps min_depth 8 channels
    model = edgecnn.create_model("mobilenet", alpha=0.1)
    assert model.features[0][0].out_channels == 8


def test_width_changes_only_channels_and_resolution_only_macs() -> None:
    a = edgecnn.profile_model("mobilenet", alpha=0.5, resolution=128)
    b = edgecnn.profile_model("mobilenet", alpha=0.5, resolution=224)
    assert a.params == b.params and a.macs < b.macs


@pytest.mark.parametrize("alpha", [0.0, -0.5, float("nan")])
def test_bad_alpha_is_a_clear_error(alpha: float) -> None:
    with pytest.raises(EdgeCNNError, match="alpha"):
        edgecnn.create_model("mobilenet", alpha=alpha)
