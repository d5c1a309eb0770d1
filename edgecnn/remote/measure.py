"""`edgecnn fit --remote DEST`: fit's latency measured on a device reached by SSH.

    measure = RemoteMeasure.connect("pi@raspberrypi.local", threads=None, log=print)
    ms = measure.time({"a": Path("a.onnx"), "b": Path("b.onnx")})   # p50 ms, side by side

The same measurement as on this machine (fit/latency.py MeasuredHere), run there: the files
are pushed in one directory (content-addressed: the same files are sent once) and timed by
the device's own edgecnn (`python -m edgecnn.timing.files`), one group of interleaved rounds
through the one timing harness, at the deployment's threads. Everything fit times goes
through it: the per-layer table, the grid points timed whole, the pruning's steps, the
candidates side by side and the shipped file; an int8 candidate is tuned there too (`edgecnn
tune --remote`). Only numbers come back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.remote.device import Device, connect
from edgecnn.remote.run import remote_tune, resolve
from edgecnn.timing.files import ITERS, ROUNDS


@dataclass(frozen=True)
class RemoteMeasure:
    """fit's FitMeasure on a device: `threads` resolved against the device's cores."""

    dest: str  # as the user gave it (a devices.yaml name, or an ssh destination)
    device: Device
    threads: int
    runtime: str = "onnxruntime"
    iters: int = ITERS  # as MeasuredHere: timed calls per file, over `rounds` rounds
    rounds: int = ROUNDS
    connect_kwargs: tuple[tuple[str, Any], ...] = ()  # for tune's own connection
    parked: bool = False  # as MeasuredHere's

    @classmethod
    def connect(cls, dest: str, threads: int | None, *,
                log: Callable[[str], None] = lambda line: None,
                **connect_kwargs: Any) -> RemoteMeasure:
        """Connect (bootstrapping edgecnn there once) and check `threads` against the
        device's cores: None is every core, as a device app runs."""
        found = resolve([dest])
        if len(found) != 1:
            raise EdgeCNNError(f"--remote {dest} names {len(found)} devices; fit measures on "
                               "one")
        _, where, overrides = found[0]
        kwargs = {**connect_kwargs, **overrides}
        dev = connect(where, extras=("tune",), log=log, **kwargs)
        cores = int(dev.identity.get("cores") or 1)
        if threads is None:
            threads = cores
        elif not 1 <= threads <= cores:
            raise EdgeCNNError(f"--threads must be 1..{cores} ({dev.name}'s cores), got "
                               f"{threads}")
        return cls(dest, dev, threads, connect_kwargs=tuple(connect_kwargs.items()))

    def identity(self) -> dict[str, Any]:
        """The device as fit.json records it (edgecnn.host.device() there, and its name)."""
        return {**self.device.identity, "remote": self.dest}

    def time(self, files: dict[str, Path]) -> dict[str, float]:
        """p50 ms at batch 1 of each file, timed side by side on the device: the same
        module as on this machine (edgecnn/timing/files.py), one group there."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "fit"  # a fixed name: the same files are sent only once
            folder.mkdir()
            names = {}
            for i, (key, path) in enumerate(files.items()):  # numbered: any key is safe
                name = f"f{i:05d}.onnx"
                shutil.copyfile(path, folder / name)
                names[name] = key
            remote = self.device.push_artifact(folder)
        out = self.device.edgecnn(
            [*[f"{remote}/{n}" for n in names], "--runtime", self.runtime, "--threads",
             str(self.threads), "--iters", str(self.iters), "--rounds", str(self.rounds),
             *(["--parked"] if self.parked else [])],
            module="edgecnn.timing.files")
        try:
            ms = json.loads(out)
        except ValueError:
            raise EdgeCNNError(f"{self.device.name}: the timing did not answer with "
                               "JSON") from None
        got = {names[Path(f).name]: float(v) for f, v in ms.items() if Path(f).name in names}
        if len(got) < len(files):
            raise EdgeCNNError(f"{self.device.name}: {len(got)} of {len(files)} files timed")
        return got

    def for_layers(self) -> RemoteMeasure:
        return replace(self, parked=True)

    def tune(self, artifact: Path, log: Callable[[str], None]) -> None:
        """`edgecnn tune` on the device, at these threads; its record comes back into the
        artifact's tuning.json."""
        remote_tune(self.dest, str(artifact), ["--threads", str(self.threads)], log=log,
                    **dict(self.connect_kwargs))

