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


class CostTimer:
    """A latency measurement injected into the int8 decision (Int8Spec(timer=...)): costs
    counted from the graph, so that the decision a test checks is the same on every machine.
    A Conv or Gemm costs 1.0 in fp32 and `int8_conv` when its weight is quantized (read
    through a DequantizeLinear); every QuantizeLinear costs `qdq`."""

    def __init__(self, int8_conv: float, qdq: float = 0.01, *, whole: float | None = None,
                 slow: tuple[str, ...] = ()) -> None:
        self.int8_conv, self.qdq, self.slow = int8_conv, qdq, slow  # slow: blocks where an
        # int8 conv costs 3.0 instead
        self.whole = whole  # time(): int8/fp32 ratio of every runtime, else the costs' ratio
        self.calls: list[str] = []

    def _costs(self, graph, blocks: dict[str, str] | None = None) -> dict[str, float]:  # noqa: ANN001
        from edgecnn.export.mixed import block_of

        dq_out = {o for n in graph.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        out: dict[str, float] = {}
        for n in graph.graph.node:
            if n.op_type in ("Conv", "Gemm", "MatMul"):
                int8 = self.int8_conv if not block_of(n.name).startswith(self.slow or ("\0",)) \
                    else 3.0
                cost = int8 if len(n.input) > 1 and n.input[1] in dq_out else 1.0
            elif n.op_type == "QuantizeLinear":
                cost = self.qdq
            else:
                continue
            key = block_of(n.name)
            key = blocks.get(key, "(unattributed)") if blocks is not None else "all"
            out[key] = out.get(key, 0.0) + cost
        return out

    def profile(self, graphs, blocks):  # noqa: ANN001, ANN201
        self.calls.append("profile")
        return [self._costs(g, blocks) for g in graphs]

    def time(self, fp32, int8):  # noqa: ANN001, ANN201
        from edgecnn.export.decision import Latency

        self.calls.append("time")
        f, q = self._costs(fp32)["all"], self._costs(int8)["all"]
        q = f * self.whole if self.whole is not None else q
        runtimes = ("onnxruntime", "openvino")
        return Latency(1, {k: f for k in runtimes}, {k: q for k in runtimes}, "CostTimer")
