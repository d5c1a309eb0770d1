"""Shared fixtures of the export tests: small trained checkpoints, made once per session.

LeNet-5 on scikit-learn's digits reaches ~93% in three epochs (a few seconds): the model
for anything that measures accuracy. MobileNet alpha 0.25 at 32 px, one epoch: depthwise
convolutions and BatchNorm for the checkpoint mechanics (its accuracy is not the point).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The CLI's own main(), in-process: argparse errors exit through SystemExit."""
    from edgecnn.cli.main import main

    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _train(out: Path, **config) -> Path:  # noqa: ANN003
    import torch

    from edgecnn.train import TrainConfig, train

    threads = torch.get_num_threads()
    try:
        train(TrainConfig(out=str(out), warmup_epochs=0, **config), log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    return out / "best.pt"


@pytest.fixture(scope="session")
def lenet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("lenet"), model="lenet5", data="digits", epochs=3)


@pytest.fixture(scope="session")
def mobilenet_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("mobilenet"), model="mobilenet", alpha=0.25,
                  resolution=32, data="digits", epochs=1)
