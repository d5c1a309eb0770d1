"""Transfer learning (`--init CHECKPOINT`): start from trained weights, new classifier.

The checkpoint must hold the same architecture (family, alpha, input channels); it fills in
the resolution and input channels the user left unset. Tensors whose shape depends on the
number of classes start fresh; any other shape mismatch is refused.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from edgecnn.errors import EdgeCNNError
from edgecnn.registry import get_spec
from edgecnn.train.config import TrainConfig


def check_init(config: TrainConfig, init: dict[str, Any]) -> TrainConfig:
    """--init: the checkpoint must hold the same architecture; it fills resolution/in_chans."""
    held = init["model"]
    if get_spec(held["name"]).name != get_spec(config.model).name:
        raise EdgeCNNError(f"{config.init} holds a {held['name']}, not a {config.model}")
    if float(held.get("alpha", 1.0)) != config.alpha:
        raise EdgeCNNError(f"{config.init} holds alpha {held.get('alpha')}, "
                           f"not {config.alpha:g}")
    if config.in_chans is not None and config.in_chans != held["in_chans"]:
        raise EdgeCNNError(f"{config.init} takes {held['in_chans']} input channels, "
                           f"not {config.in_chans}")
    return replace(config, in_chans=held["in_chans"],
                   resolution=config.resolution or int(init["resolution"]))


def load_transfer(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> list[str]:
    """Load `state` into `model`, leaving out the tensors whose shape depends on the number of
    classes (the classifier). Returns the names left at their fresh initialization."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise EdgeCNNError(f"{source}: weights do not fit {model.config['name']} "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    replaced = [k for k in own if own[k].shape != state[k].shape]
    heads = {k for k in replaced if own[k].shape[:1] == (model.config["num_classes"],)}
    if set(replaced) - heads:  # a shape that does not come from the class count
        bad = sorted(set(replaced) - heads)[0]
        raise EdgeCNNError(f"{source}: {bad} is {tuple(state[bad].shape)}, the model wants "
                           f"{tuple(own[bad].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k not in heads}, strict=False)
    return replaced
