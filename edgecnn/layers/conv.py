"""Convolution building blocks shared by every family, and the one channel-rounding helper."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError

ActLayer = Callable[..., nn.Module]
NormLayer = Callable[[int], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never more than 10% down.

    The rule of the TensorFlow/torchvision MobileNet v2/v3 and ShuffleNet references.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # rounding down must not remove more than 10%
        rounded += divisor
    return int(rounded)


def scale_channels(channels: int, alpha: float, *, divisor: int = 1, min_channels: int = 0) -> int:
    """Channels of a layer after the width multiplier alpha: the one rounding helper of the zoo.

    divisor > 1: round to that multiple with `make_divisible` (MobileNet v2/v3 reference).
    divisor == 1: truncate, then floor at `min_channels`, which is TF-slim's
    `max(int(d * depth_multiplier), min_depth)` used by MobileNet v1 (min_depth 8) and plain
    truncation for SqueezeNet/SqueezeNext (min_channels 0).
    A layer that ends with no channels is an error, never a silent 1.
    """
    if not alpha > 0:
        raise EdgeCNNError(f"alpha must be positive, got {alpha}")
    if divisor > 1:
        out = make_divisible(channels * alpha, divisor, min_value=max(divisor, min_channels))
    else:
        out = max(int(channels * alpha), min_channels)
    if out < 1:
        raise EdgeCNNError(f"alpha={alpha} rounds a {channels}-channel layer to zero channels")
    return out


class ConvNormAct(nn.Sequential):
    """conv -> norm -> activation, the unit every family is made of.

    Padding defaults to 'same' for odd kernels ((k - 1) // 2 * dilation). `kernel_size` may be
    a pair, as in SqueezeNext's 3x1 and 1x3 convolutions. norm/act None leave them out; the
    conv then carries a bias (no BN to absorb it).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer | None = nn.BatchNorm2d,
        act_layer: ActLayer | None = nn.ReLU,
        bias: bool | None = None,
        inplace: bool = True,
    ) -> None:
        if in_channels % groups or out_channels % groups:
            raise EdgeCNNError(
                f"channels {in_channels}->{out_channels} are not divisible by groups={groups}"
            )
        if padding is None:
            ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
            padding = ((ks[0] - 1) // 2 * dilation, (ks[1] - 1) // 2 * dilation)
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      dilation=dilation, groups=groups, bias=bias)
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(_make_act(act_layer, inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


class ConvTransposeNormAct(nn.Sequential):
    """Transposed conv -> norm -> activation (upsampling decoders, segmentation heads)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 4,
        stride: int = 2,
        padding: int = 1,
        norm_layer: NormLayer | None = nn.BatchNorm2d,
        act_layer: ActLayer | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                               bias=norm_layer is None)
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if act_layer is not None:
            layers.append(_make_act(act_layer, True))
        super().__init__(*layers)
        self.out_channels = out_channels


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv + BN + act, then 1x1 pointwise conv + BN + act (MobileNet v1, Fig. 3)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__(
            ConvNormAct(in_channels, in_channels, 3, stride, groups=in_channels,
                        dilation=dilation, norm_layer=norm_layer, act_layer=act_layer),
            ConvNormAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer),
        )
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018): channel gates from global context.

    (B, C, H, W) -> global average -> 1x1 conv C->S -> act -> 1x1 conv S->C -> gate -> x * gate.
    The 1x1 convs carry biases, as in the paper's FC layers and torchvision's reference.
    """

    def __init__(
        self,
        channels: int,
        squeeze_channels: int,
        act_layer: ActLayer = nn.ReLU,
        gate_layer: ActLayer = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = act_layer(inplace=True) if _takes_inplace(act_layer) else act_layer()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


def _takes_inplace(act_layer: ActLayer) -> bool:
    return act_layer in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)


def _make_act(act_layer: ActLayer, inplace: bool) -> nn.Module:
    return act_layer(inplace=inplace) if _takes_inplace(act_layer) else act_layer()
