"""Precise BN (edgecnn/train/precise_bn.py): after the recompute, every BatchNorm's running
statistics are the training data's batch statistics under the final weights, whatever the
layer's momentum; weights, momenta and the model's mode are left as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn.data import load_dataset
from edgecnn.errors import EdgeCNNError
from edgecnn.train import TrainConfig
from edgecnn.train.engine import make_transform
from edgecnn.train.precise_bn import batchnorms, recompute_bn_stats


def _net() -> nn.Module:
    """Two BN layers (the second sees the first's output), MobileNet v3's momentum 0.01."""
    torch.manual_seed(0)
    bn = {"eps": 1e-3, "momentum": 0.01}
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), nn.BatchNorm2d(8, **bn), nn.Hardswish(),
                         nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8, **bn), nn.Hardswish(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(8, 10))


def test_running_stats_become_the_datasets_batch_statistics() -> None:
    digits = load_dataset("digits", split="train")
    data = digits.subset(np.arange(256))
    tf = make_transform(data, resolution=16, in_chans=1, train=False)  # no augmentation
    model = _net()
    x = tf(torch.from_numpy(data.images))
    # What the recompute must give: the statistics of one 256-image batch, layer by layer,
    # read off a copy whose momentum 1 makes the running values the last batch's.
    expected = copy.deepcopy(model).train()
    for m in batchnorms(expected):
        m.momentum = 1.0
    with torch.no_grad():
        expected(x)
        first = model[0](x)  # the first layer's by hand too: mean and unbiased variance
    want = [(m.running_mean.clone(), m.running_var.clone()) for m in batchnorms(expected)]
    assert torch.allclose(want[0][0], first.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(want[0][1], first.var((0, 2, 3), unbiased=True), rtol=1e-4)

    model.train()  # a training step's forward moves the running averages by 1% only
    with torch.no_grad():
        model(x)
    stale = [m.running_mean.clone() for m in batchnorms(model)]
    assert not torch.allclose(stale[0], want[0][0], atol=1e-3)  # so the check below can fail
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    model.eval()

    used = recompute_bn_stats(model, data, tf, batch_size=256, seed=0, epoch=1,
                              device=torch.device("cpu"), images=256)
    assert used == 1
    for m, (mean, var) in zip(batchnorms(model), want):
        assert torch.allclose(m.running_mean, mean, atol=1e-5)
        assert torch.allclose(m.running_var, var, rtol=1e-4, atol=1e-6)
        assert m.momentum == 0.01  # the paper's value is back
    assert not model.training
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_several_batches_average_their_statistics_and_stop_at_the_budget() -> None:
    data = load_dataset("digits", split="train").subset(np.arange(384))
    tf = make_transform(data, resolution=16, in_chans=1, train=False)
    model = _net()
    assert recompute_bn_stats(model, data, tf, batch_size=128, seed=0, epoch=1,
                              device=torch.device("cpu"), images=256) == 2
    # All three batches: the mean of equal batches' means is the data set's mean.
    assert recompute_bn_stats(model, data, tf, batch_size=128, seed=0, epoch=1,
                              device=torch.device("cpu"), images=10_000) == 3
    with torch.no_grad():
        first = model[0](tf(torch.from_numpy(data.images)))
    assert torch.allclose(model[1].running_mean, first.mean((0, 2, 3)), atol=1e-5)
    assert recompute_bn_stats(nn.Linear(3, 2), data, tf, batch_size=128, seed=0, epoch=1,
                              device=torch.device("cpu")) == 0  # no BatchNorm: nothing to do


def test_precise_bn_option_is_validated() -> None:
    assert TrainConfig(model="m", data="d", out="o").precise_bn > 0  # on by default
    TrainConfig(model="m", data="d", out="o", precise_bn=0).validate()  # off
    with pytest.raises(EdgeCNNError, match="precise_bn must be an integer >= 0"):
        TrainConfig(model="m", data="d", out="o", precise_bn=-1).validate()


def tiny_bn_net(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """_net() as an import-path model for `train` (tests.test_train_precise_bn:tiny_bn_net)."""
    assert in_chans == 1 and num_classes == 10
    return _net()


@pytest.mark.parametrize("images, batches", [(256, 2), (0, 1437 // 128)])
def test_a_training_run_recomputes_after_each_epoch(tmp_path, images: int,
                                                    batches: int) -> None:
    """After the run, the BN layers have counted the recompute's batches (2 of 128 for 256
    images), not the epoch's training steps (11): the loop called it, with its budget."""
    from edgecnn.train import train

    result = train(TrainConfig(model="tests.test_train_precise_bn:tiny_bn_net", data="digits",
                               out=str(tmp_path / "run"), epochs=1, resolution=16,
                               precise_bn=images, seed=1), log=lambda _line: None)
    counts = {int(m.num_batches_tracked) for m in batchnorms(result.model)}
    assert counts == {batches}
    assert {m.momentum for m in batchnorms(result.model)} == {0.01}
