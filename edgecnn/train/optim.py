"""Optimizer and learning-rate schedule, as the papers train these networks.

- No weight decay on depthwise filters (MobileNet, Section 3.3: "very little or no weight
  decay ... on the depthwise filters since there are so few parameters in them"), nor on
  BatchNorm scales/shifts and biases (they set scale, not capacity; Goyal et al. 2017).
- Linear warm-up, then cosine (Loshchilov & Hutter 2017) or step decay, stepped per
  iteration so that short runs get a smooth curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from edgecnn.train.config import STEP_GAMMA, STEP_MILESTONES


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed (conv/linear weights) and not (depthwise, norm, bias)."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1 \
                and module.groups == module.in_channels:  # depthwise
            no_decay_ids.add(id(module.weight))
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        # ndim <= 1: BN/LayerNorm scales and shifts, every bias.
        if param.ndim <= 1 or id(param) in no_decay_ids:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    # AdamW: momentum is beta1; beta2 0.999 (the paper's)
    return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))


@dataclass
class WarmupDecay:
    """lr multiplier at iteration `step`: linear warm-up, then cosine or step decay.

    A plain dataclass rather than a closure: LambdaLR saves its attributes in state_dict,
    so a checkpoint records the schedule it followed.
    """

    total_steps: int
    warmup_steps: int
    kind: str  # "cosine" | "step"

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / decay_steps, 1.0)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return STEP_GAMMA ** sum(progress >= m for m in STEP_MILESTONES)


def build_scheduler(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float, kind: str) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    warmup = min(round(warmup_epochs * steps_per_epoch), total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupDecay(total, warmup, kind))
