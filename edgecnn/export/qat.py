"""Quantization-aware fine-tuning with fake quantization, exported through the same QDQ path.

torchao's PT2E QAT is not used: torchao is not a dependency of edgecnn, and torch 2.13 no
longer ships `torch.ao.quantization.quantize_pt2e` (it moved to torchao). So this uses
torch.ao.quantization's FakeQuantize modules directly, placed where ONNX Runtime's QDQ
quantizer will put its Q/DQ pairs for the target's scheme:

  weights      every Conv2d/Linear weight, int8 symmetric per output channel (axis 0). With BN
               after a conv, per-channel scales commute with BN's per-channel factor, so the
               rounding grid is the one of the folded weight that is finally exported.
  activations  the input of every Conv2d/Linear, per tensor: uint8 asymmetric (CPU targets)
               or int8 symmetric (TensorRT), ranges from moving-average min/max observers.
               With the recipe's `signed_input`, a layer reading the network input itself
               rounds it int8 symmetric, as the exporter writes a signed input.

The network trains with these rounding errors in its forward pass (straight-through
gradients) and learns weights that survive them. Afterwards the fake quantizers are removed,
the float model is exported, and ONNX Runtime quantizes it with the same scheme (min/max
calibration finds the ranges the observers tracked).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
from torch.ao.quantization.observer import MovingAveragePerChannelMinMaxObserver
from torch.nn.utils import parametrize

from edgecnn.export.quantize import weight_range
from edgecnn.export.targets import Int8Scheme


def weight_grid(scheme: Int8Scheme) -> tuple[int, int]:
    """The integer range the exporter writes weights in (ONNX Runtime's symmetric per-channel
    weights: [-127, 127], or [-64, 64] with reduced range), so that training sees the grid
    the int8 file computes on."""
    reduced, _ = weight_range(scheme)
    return (-64, 64) if reduced else (-127, 127)


class _WeightFakeQuant(nn.Module):
    """Parametrization: weight -> fake-quantized weight (int8, symmetric, per channel 0)."""

    def __init__(self, scheme: Int8Scheme) -> None:
        super().__init__()
        low, high = weight_grid(scheme)
        self.fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=low,
                               quant_max=high, dtype=torch.qint8,
                               qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.fq(weight)


def _activation_fake_quant(scheme: Int8Scheme, *, network_input: bool = False) -> FakeQuantize:
    if scheme.symmetric_activations or (network_input and scheme.signed_input):
        return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                            dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                        dtype=torch.quint8, qscheme=torch.per_tensor_affine)


@contextmanager
def fake_quantized(model: nn.Module, scheme: Int8Scheme):
    """Within the block, `model` computes with int8 rounding of weights and layer inputs."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    seen: list[torch.Tensor] = []  # this forward's network input

    def remember(_: nn.Module, args: tuple) -> None:
        seen[:] = args[:1]

    def round_input(m: nn.Module, args: tuple) -> tuple:
        fq = m.input_fq if seen and args[0] is seen[0] else m.act_fq
        return (fq(args[0]), *args[1:])

    hooks = [model.register_forward_pre_hook(remember)]
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", _WeightFakeQuant(scheme))
        layer.act_fq = _activation_fake_quant(scheme)  # registered: moves with the model
        layer.input_fq = _activation_fake_quant(scheme, network_input=True)
        hooks.append(layer.register_forward_pre_hook(round_input))
    try:
        yield model
    finally:
        for hook in hooks:
            hook.remove()
        for layer in layers:
            # leave_parametrized=False: the weight becomes the trained float one, not its
            # rounding (ONNX Runtime's quantizer rounds it again with the same grid).
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            del layer.act_fq, layer.input_fq


def qat_finetune(model: nn.Module, scheme: Int8Scheme, *, data: str, epochs: int,
                 resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                 lr: float = 0.002, seed: int = 0) -> nn.Module:
    """Fine-tune `model` in place for `epochs` with fake quantization; returns it in eval mode
    with plain float weights (fake quantizers removed)."""
    from edgecnn.train import finetune

    with fake_quantized(model, scheme):
        # A small learning rate: the weights are good, they only need to settle on the grid.
        # no precise BN: its passes in training mode would move the fake quantizers' ranges
        finetune(model, data, epochs=epochs, resolution=resolution, lr=lr, seed=seed,
                 mean=mean, std=std, precise_bn=0)
    return model.eval()
