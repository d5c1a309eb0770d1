"""Weight initialisation shared by the families that use torchvision's common scheme."""

from __future__ import annotations

from torch import nn


def is_meta(model: nn.Module) -> bool:
    """True when the model is built on the meta device (profiling): nothing to initialise.

    Each nn.init call costs ~4 ms on meta tensors; skipping them keeps `edgecnn list` fast.
    """
    first = next(model.parameters(), None)
    return first is not None and first.is_meta


def init_he_fan_out(model: nn.Module, linear_std: float = 0.01) -> None:
    """He normal (fan_out) convs, BN at (1, 0), N(0, linear_std) linears, zero biases.

    The scheme of torchvision's MobileNet v2/v3, ShuffleNet v2 and VGG (He et al., ICCV 2015).
    """
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
