"""Residual units of the ResNet family, and stochastic depth.

Post-activation units (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385): conv -> BN -> ReLU inside the branch, ReLU after the addition.
`Bottleneck` puts the stride on its 3x3 conv (torchvision's "v1.5", from fb.resnet.torch) and
takes ResNeXt's cardinality `groups` and `base_width` (Xie et al., "Aggregated Residual
Transformations for Deep Neural Networks", CVPR 2017, arXiv:1611.05431).

Pre-activation units (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016,
arXiv:1603.05027): BN -> ReLU -> conv inside the branch and nothing after the addition, so the
shortcut path is a pure identity from block to block.

Every unit takes an optional Squeeze-and-Excitation gate on its residual branch, before the
addition (Hu et al., CVPR 2018, Fig. 3), and a survival probability for stochastic depth
(`DropPath`, Huang et al., ECCV 2016).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct, NormLayer, SqueezeExcitation, scale_channels


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples during training.

    Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016, arXiv:1603.09382.
    Each sample keeps the branch with probability `survival_prob`; kept branches are scaled
    by 1 / survival_prob at train time ("inverted" scaling), so that in eval mode, and so in
    every export, the module is the identity with no scaling at all.
    """

    def __init__(self, survival_prob: float) -> None:
        super().__init__()
        if not 0.0 < survival_prob <= 1.0:
            raise EdgeCNNError(f"survival probability must be in (0, 1], got {survival_prob}")
        self.survival_prob = survival_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.survival_prob == 1.0:
            return x
        # One Bernoulli draw per sample, broadcast over (C, H, W).
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(self.survival_prob)
        return x * keep / self.survival_prob

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob:.4f}"


def survival_probs(num_blocks: int, last: float | None) -> list[float]:
    """The linear decay rule of stochastic depth: p_l = 1 - l / L * (1 - p_L), l = 1..L.

    `last` is p_L, the survival probability of the last block (0.5 in the paper); None
    disables stochastic depth (every p_l = 1). The first block has the highest p_l.
    """
    if last is None:
        return [1.0] * num_blocks
    if isinstance(last, bool) or not isinstance(last, (int, float)) or not 0.0 < last <= 1.0:
        raise EdgeCNNError(
            f"stochastic_depth is the survival probability of the last block, in (0, 1], "
            f"got {last!r}"
        )
    return [1.0 - (i + 1) / num_blocks * (1.0 - last) for i in range(num_blocks)]


def _drop_path(survival_prob: float) -> nn.Module:
    # No module at all when nothing is dropped: the plain network, op for op.
    return DropPath(survival_prob) if survival_prob < 1.0 else nn.Identity()


def _se(channels: int, reduction: int | None) -> nn.Module:
    """The SE gate of a residual branch with C channels: squeeze to C // r (Hu et al., Fig. 3)."""
    if reduction is None:
        return nn.Identity()
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise EdgeCNNError(f"se_reduction must be a positive integer or None, got {reduction!r}")
    if channels // reduction < 1:
        raise EdgeCNNError(
            f"se_reduction={reduction} squeezes a {channels}-channel block to zero channels"
        )
    # Integer division, exactly the reference (Cadene's pretrainedmodels SEModule, timm).
    return SqueezeExcitation(channels, channels // reduction)


def _check_basic(groups: int, base_width: int) -> None:
    if groups != 1 or base_width != 64:
        raise EdgeCNNError(
            "basic blocks (ResNet-18/34) have no cardinality or bottleneck width: "
            f"groups must be 1 and width_per_group 64, got {groups} and {base_width}"
        )


def bottleneck_width(width: int, groups: int, base_width: int) -> int:
    """Channels of the grouped 3x3 conv: ResNeXt's C x d, `width * base_width / 64` per group.

    ResNet-50's stage widths (64 .. 512) are at base_width 64 and one group; torchvision's
    `int(planes * (base_width / 64.0)) * groups`.
    """
    for label, value in (("groups", groups), ("width_per_group", base_width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EdgeCNNError(f"{label} must be a positive integer, got {value!r}")
    return scale_channels(width, base_width / 64) * groups


class _PostActResidual(nn.Module):
    """out = ReLU(drop_path(SE(branch(x))) + shortcut(x)); subclasses build `self.branch`."""

    def _finish(self, in_channels: int, out_channels: int, stride: int,
                se_reduction: int | None, survival_prob: float, norm_layer: NormLayer) -> None:
        self.se = _se(out_channels, se_reduction)
        self.drop_path = _drop_path(survival_prob)
        self.downsample = _projection(in_channels, out_channels, stride, norm_layer)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.drop_path(self.se(self.branch(x))) + shortcut)

    def zero_init_last(self) -> None:
        """Zero the branch's last BN scale: the block starts as the identity (Goyal et al.)."""
        nn.init.zeros_(self.branch[-1][1].weight)


class BasicBlock(_PostActResidual):
    """Two 3x3 convs (ResNet-18/34, Fig. 5 left): out = ReLU(F(x) + shortcut(x))."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_reduction: int | None = None,
        survival_prob: float = 1.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        _check_basic(groups, base_width)
        out_channels = width * self.expansion
        self.branch = nn.Sequential(
            ConvNormAct(in_channels, width, 3, stride, norm_layer=norm_layer),
            ConvNormAct(width, out_channels, 3, norm_layer=norm_layer, act_layer=None),
        )
        self._finish(in_channels, out_channels, stride, se_reduction, survival_prob, norm_layer)


class Bottleneck(_PostActResidual):
    """1x1 reduce -> 3x3 (stride, groups) -> 1x1 expand x4 (ResNet-50+, ResNeXt)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_reduction: int | None = None,
        survival_prob: float = 1.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        mid = bottleneck_width(width, groups, base_width)
        out_channels = width * self.expansion
        self.branch = nn.Sequential(
            ConvNormAct(in_channels, mid, 1, norm_layer=norm_layer),
            ConvNormAct(mid, mid, 3, stride, groups=groups, norm_layer=norm_layer),
            ConvNormAct(mid, out_channels, 1, norm_layer=norm_layer, act_layer=None),
        )
        self._finish(in_channels, out_channels, stride, se_reduction, survival_prob, norm_layer)


def _projection(
    in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer
) -> nn.Module | None:
    """Option B of the paper: a 1x1 conv + BN shortcut only where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return None
    return ConvNormAct(in_channels, out_channels, 1, stride, norm_layer=norm_layer,
                       act_layer=None)


class NormActConv(nn.Sequential):
    """BN -> ReLU -> conv, the pre-activation ordering (He et al. 2016b, Fig. 4e)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(
            norm_layer(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
        )
        self.out_channels = out_channels


class _PreActUnit(nn.Module):
    """A full pre-activation unit: out = F(BN-ReLU(x)) + shortcut, nothing after the sum.

    `preact=False` leaves out the unit's own BN-ReLU, for the first unit after an ImageNet
    stem that already ends in BN-ReLU (fb.resnet.torch's preresnet.lua, 'no_preact').
    A projection shortcut (1x1 conv, no BN) reads the pre-activated input, as in
    fb.resnet.torch and timm's ResNetV2; an identity shortcut carries x untouched.
    """

    expansion = 1

    def __init__(self, preact: nn.Module, branch: nn.Sequential, se: nn.Module,
                 survival_prob: float, downsample: nn.Module | None, out_channels: int) -> None:
        super().__init__()
        self.preact = preact
        self.branch = branch
        self.se = se
        self.drop_path = _drop_path(survival_prob)
        self.downsample = downsample
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_pre = self.preact(x)
        shortcut = x if self.downsample is None else self.downsample(x_pre)
        return self.drop_path(self.se(self.branch(x_pre))) + shortcut

    def zero_init_last(self) -> None:
        """No BN ends a pre-activation branch: zero its last conv instead (timm's ResNetV2)."""
        nn.init.zeros_(self.branch[-1][-1].weight)


def _preact_parts(in_channels: int, out_channels: int, stride: int, preact: bool,
                  norm_layer: NormLayer) -> tuple[nn.Module, nn.Module | None]:
    """The unit's own BN-ReLU (or nothing) and its projection shortcut (or None)."""
    pre: nn.Module = nn.Identity()
    if preact:
        pre = nn.Sequential(norm_layer(in_channels), nn.ReLU(inplace=True))
    down = None
    if stride != 1 or in_channels != out_channels:
        down = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
    return pre, down


class PreActBasicBlock(_PreActUnit):
    """Two BN-ReLU-conv3x3 (pre-activation ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_reduction: int | None = None,
        survival_prob: float = 1.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        preact: bool = True,
    ) -> None:
        _check_basic(groups, base_width)
        out_channels = width * self.expansion
        pre, down = _preact_parts(in_channels, out_channels, stride, preact, norm_layer)
        branch = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride, 1, bias=False),  # after `pre`
            NormActConv(width, out_channels, 3, norm_layer=norm_layer),
        )
        super().__init__(pre, branch, _se(out_channels, se_reduction), survival_prob, down,
                         out_channels)


class PreActBottleneck(_PreActUnit):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride, groups), BN-ReLU-conv1x1 x4."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        se_reduction: int | None = None,
        survival_prob: float = 1.0,
        norm_layer: NormLayer = nn.BatchNorm2d,
        preact: bool = True,
    ) -> None:
        mid = bottleneck_width(width, groups, base_width)
        out_channels = width * self.expansion
        pre, down = _preact_parts(in_channels, out_channels, stride, preact, norm_layer)
        branch = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),  # after `pre`
            NormActConv(mid, mid, 3, stride, groups=groups, norm_layer=norm_layer),
            NormActConv(mid, out_channels, 1, norm_layer=norm_layer),
        )
        super().__init__(pre, branch, _se(out_channels, se_reduction), survival_prob, down,
                         out_channels)


# The unit classes a ResNet stage is made of; they share one constructor signature.
ResidualBlock = type[BasicBlock | Bottleneck | PreActBasicBlock | PreActBottleneck]
