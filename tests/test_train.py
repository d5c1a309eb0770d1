"""Training: the finetune/evaluate API, a real `edgecnn train` run and its files, `edgecnn eval`,
transfer learning with --init, the optimizer's parameter groups and schedule, bad input.

Runs are tiny (LeNet-5 on scikit-learn's 1,797 digits, 1-2 epochs); the kill-and-resume and
the two-process tests live in test_train_resume.py and test_train_ddp.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgecnn import create_model
from edgecnn.checkpoint import load_checkpoint, model_from_checkpoint
from edgecnn.cli.main import main
from edgecnn.errors import EdgeCNNError
from edgecnn.train import TrainConfig, evaluate_accuracy, finetune
from edgecnn.train.transfer import load_transfer
from edgecnn.train.optim import WarmupDecay, param_groups
from tests.conftest import ROOT, run_cli, run_on_terminal

LENET = ("lenet5", "--data", "digits", "--lr", "0.05", "--seed", "3")


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-epoch `edgecnn train` run, shared by the tests that read its files."""
    out = tmp_path_factory.mktemp("run") / "lenet"
    proc = run_cli("train", *LENET, "--epochs", "2", "--out", str(out), check=True)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr)
    return out


def _error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the real CLI in-process; it must fail with exit 2 and one line, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgecnn: error: ") and err.count("\n") == 1, err
    return err


# ------------------------------------------------------------------------------------------
# The API the export stage uses.


def test_finetune_learns_is_seeded_and_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    twin = create_model("lenet5")
    twin.load_state_dict(model.state_dict())
    before = evaluate_accuracy(model, "digits", resolution=32)
    assert before["images"] == 360 and before["top1"] < 0.3  # untrained: chance level

    rng = torch.get_rng_state()
    assert finetune(model, "digits", epochs=1, resolution=32, lr=0.05) is model
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    after = evaluate_accuracy(model, "digits", resolution=32)
    assert after["top1"] > 0.6 and after["top5"] >= after["top1"] and after["loss"] < 1.5

    finetune(twin, "digits", epochs=1, resolution=32, lr=0.05)  # same seed: same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 twin.state_dict().values()))


def test_finetune_works_on_a_bare_module_and_checks_its_classes() -> None:
    # Not a zoo model (as after pruning with a custom head): in_chans from the first conv.
    torch.manual_seed(0)
    bare = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 10))
    finetune(bare, "digits", epochs=2, resolution=16, lr=0.1, augment=False)
    assert evaluate_accuracy(bare, "digits", resolution=16)["top1"] > 0.5
    wrong = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 7))
    with pytest.raises(EdgeCNNError, match="7 classes, data set digits has 10"):
        finetune(wrong, "digits", epochs=1, resolution=16)
    with pytest.raises(EdgeCNNError, match="learning rate must be > 0"):
        finetune(bare, "digits", epochs=1, resolution=16, lr=-1.0)
    with pytest.raises(EdgeCNNError, match="mean/std need 3 values"):
        evaluate_accuracy(bare, "digits", resolution=16, mean=(0.5,), std=(0.2,))


# ------------------------------------------------------------------------------------------
# Optimizer and schedule.


def test_no_weight_decay_on_depthwise_batchnorm_and_bias() -> None:
    model = create_model("mobilenet", alpha=0.25, num_classes=10)
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert decayed | spared == set(names.values()) and not decayed & spared
    depthwise = {f"{n}.weight" for n, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1}
    assert len(depthwise) == 13  # one per depthwise-separable block (Table 1)
    assert depthwise <= spared
    norms = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
             for p in ("weight", "bias")}
    assert len(norms) == 2 * 27 and norms <= spared  # stem + 2 per block
    assert {n for n in names.values() if n.endswith(".bias")} <= spared
    assert "classifier.weight" in decayed and "features.0.0.weight" in decayed  # stem conv


def test_warmup_then_cosine_or_step() -> None:
    cosine = WarmupDecay(total_steps=100, warmup_steps=10, kind="cosine")
    assert [cosine(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert cosine(9) == 1.0 and cosine(10) == 1.0
    assert cosine(55) == pytest.approx(0.5) and cosine(99) < 1e-3
    values = [cosine(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # decays monotonically
    step = WarmupDecay(total_steps=110, warmup_steps=10, kind="step")
    assert step(10) == 1.0 and step(59) == 1.0 and step(60) == pytest.approx(0.1)
    assert step(84) == pytest.approx(0.1) and step(85) == pytest.approx(0.01)


# ------------------------------------------------------------------------------------------
# A real run and its files.


def test_train_writes_checkpoints_metrics_and_curves(lenet_run: Path) -> None:
    names = {p.name for p in lenet_run.iterdir()}
    assert {"last.pt", "best.pt", "metrics.csv", "metrics.json", "curves.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert (lenet_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = (lenet_run / "stdout.txt").read_text()
    assert log.count("epoch ") >= 2 and "img/s" in log and "\r" not in log  # no bar in a pipe

    rows = list(csv.DictReader((lenet_run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    doc = json.loads((lenet_run / "metrics.json").read_text())
    assert [r["epoch"] for r in doc["epochs"]] == [1, 2]
    accs = [r["val_acc"] for r in doc["epochs"]]
    assert doc["best_val_acc"] == max(accs) and doc["epochs"][doc["best_epoch"] - 1]["val_acc"] \
        == max(accs)
    assert all(float(r["train_images_per_s"]) > 0 and float(r["lr"]) >= 0 for r in rows)

    last, best = load_checkpoint(lenet_run / "last.pt"), load_checkpoint(lenet_run / "best.pt")
    assert last["epoch"] == 2 and best["epoch"] == doc["best_epoch"]
    for key in ("optimizer", "scheduler", "rng", "train_config", "history"):
        assert key in last and key not in best
    assert last["train_config"]["lr"] == 0.05 and last["train_config"]["resolution"] == 32
    # Everything needed to use the model without the command line that made it.
    assert best["model"]["name"] == "lenet5" and best["model"]["in_chans"] == 1
    assert best["resolution"] == 32 and best["dataset"] == "digits"
    assert best["classes"] == [str(d) for d in range(10)]
    assert len(best["mean"]) == 1 and 0.1 < best["mean"][0] < 0.5 and best["std"][0] > 0.1
    model = model_from_checkpoint(best)
    again = evaluate_accuracy(model, "digits", resolution=best["resolution"], mean=best["mean"],
                              std=best["std"])
    assert again["top1"] == pytest.approx(doc["best_val_acc"], abs=1e-9)
    assert again["top1"] > 0.6


def test_a_directory_holding_a_run_is_refused_unless_forced(
        lenet_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = {p.name: p.read_bytes() for p in lenet_run.iterdir()}
    err = _error_line(capsys, ["train", *LENET, "--epochs", "1", "--out", str(lenet_run)])
    assert "already holds a run" in err and "--resume" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in lenet_run.iterdir()} == before
    with pytest.raises(SystemExit) as exit_info:  # argparse: mutually exclusive options
        main(["train", *LENET, "--out", str(lenet_run), "--resume", "--force"])
    assert exit_info.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_force_replaces_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["train", *LENET, "--epochs", "2", "--out", str(out)]) == 0
    assert main(["train", *LENET, "--epochs", "1", "--out", str(out), "--force"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 1
    assert load_checkpoint(out / "best.pt")["epoch"] == 1  # not the old run's best
    capsys.readouterr()


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """tqdm draws on a terminal (and only there: see the pipe case above)."""
    code, text = run_on_terminal(
        [sys.executable, "-m", "edgecnn", "train", *LENET, "--epochs", "1", "--out",
         str(tmp_path / "tty")], env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert code == 0
    assert "epoch 1/1" in text and "img_s=" in text and "loss=" in text and "acc=" in text


# ------------------------------------------------------------------------------------------
# edgecnn eval.


def test_eval_reports_accuracy_per_class_and_draws(lenet_run: Path, tmp_path: Path) -> None:
    proc = run_cli("eval", str(lenet_run / "best.pt"), "--data", "digits", "--json",
                   "--out", str(tmp_path), check=True)
    report = json.loads(proc.stdout)
    doc = json.loads((lenet_run / "metrics.json").read_text())
    assert report["top1"] == pytest.approx(doc["best_val_acc"], abs=1e-9)
    assert report["top5"] >= report["top1"] and report["images"] == 360
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 360
    assert np.trace(confusion) / 360 == pytest.approx(report["top1"])
    for i, acc in enumerate(report["per_class"].values()):
        assert acc == pytest.approx(confusion[i, i] / confusion[i].sum())
    for key in ("confusion", "filters", "features", "report"):
        path = Path(report["files"][key])
        assert path.parent == tmp_path and path.stat().st_size > 0
    assert json.loads(Path(report["files"]["report"]).read_text())["top1"] == report["top1"]

    text = run_cli("eval", str(lenet_run / "best.pt"), "--no-pictures", check=True).stdout
    assert "top-1" in text and "digits" in text  # the checkpoint's own data set by default


# ------------------------------------------------------------------------------------------
# Transfer learning with --init.


def _three_class_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("bar", "dot", "ring")):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (16, 16), dtype=np.uint8)
            pixels[:, 6 + c * 2: 9 + c * 2] += 150
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_init_transfers_all_but_the_classifier(lenet_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    source = load_checkpoint(lenet_run / "best.pt")
    fresh = create_model("lenet5", num_classes=3)
    replaced = load_transfer(fresh, source["state_dict"], source="best.pt")
    assert replaced == ["classifier.weight", "classifier.bias"]
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, source["state_dict"][key]) == (key not in replaced)

    folder = _three_class_folder(tmp_path / "shapes")
    out = tmp_path / "transfer"
    assert main(["train", "lenet5", "--init", str(lenet_run / "best.pt"), "--data",
                 f"imagefolder:{folder}", "--epochs", "1", "--out", str(out)]) == 0
    assert "new classifier for 3 classes" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["classes"] == ["bar", "dot", "ring"] and ckpt["model"]["num_classes"] == 3
    assert ckpt["resolution"] == 32 and ckpt["model"]["in_chans"] == 1  # from the init

    err = _error_line(capsys, ["train", "mobilenet", "--init", str(lenet_run / "best.pt"),
                               "--data", "digits", "--out", str(tmp_path / "x")])
    assert "holds a lenet5, not a mobilenet" in err
    err = _error_line(capsys, ["eval", str(lenet_run / "best.pt"), "--data",
                               f"imagefolder:{folder}", "--no-pictures"])
    assert "predicts classes" in err


# ------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written.


@pytest.mark.parametrize("extra, message", [
    (["--data", "mnist6k"], "unknown dataset 'mnist6k'"),
    (["--data", "digits", "--lr", "-0.1"], "learning rate must be > 0"),
    (["--data", "digits", "--epochs", "0"], "epochs must be an integer >= 1"),
    (["--data", "digits", "--label-smoothing", "1"], "label smoothing must be in [0, 1)"),
    (["--data", "digits", "--weight-decay", "nan"], "weight decay must be >= 0"),
    (["--data", "digits", "--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--data", "digits", "--resolution", "16"], "lenet5 needs a resolution of at least 28"),
])
def test_nonsense_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str) -> None:
    out = tmp_path / "run"
    err = _error_line(capsys, ["train", "lenet5", *extra, "--out", str(out)])
    assert message in err
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    err = _error_line(capsys, ["train", "lenet5", "--data", "digits", "--init", str(junk),
                               "--out", str(tmp_path / "a")])
    assert "junk.pt: not a readable edgecnn checkpoint" in err
    assert "junk.pt" in _error_line(capsys, ["eval", str(junk), "--data", "digits"])
    assert "no such checkpoint" in _error_line(
        capsys, ["eval", str(tmp_path / "missing.pt"), "--data", "digits"])
    # A pickle that would run code on load: weights_only refuses it.
    torch.save({"format": "edgecnn-checkpoint/1", "hook": os.system}, tmp_path / "evil.pt")
    assert "not a readable" in _error_line(capsys, ["eval", str(tmp_path / "evil.pt")])
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_config_validation_messages() -> None:
    config = TrainConfig(model="lenet5", data="digits", out="x")
    resolved = config.resolved()
    assert (resolved.lr, resolved.weight_decay) == (0.1, 5e-4)
    adamw = TrainConfig(model="lenet5", data="digits", out="x", optimizer="adamw").resolved()
    assert (adamw.lr, adamw.weight_decay) == (2e-3, 0.05)
    for bad, message in (({"momentum": 1.0}, "momentum must be in [0, 1)"),
                         ({"warmup_epochs": -1.0}, "warm-up epochs must be >= 0"),
                         ({"lr": math.inf}, "learning rate must be > 0"),
                         ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw")):
        with pytest.raises(EdgeCNNError, match=message.replace("[", r"\[").replace(")", r"\)")):
            TrainConfig(model="lenet5", data="digits", out="x", **bad).validate()
