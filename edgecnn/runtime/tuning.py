"""An artifact's tunings: what `edgecnn tune` measured on each device, and the one that fits
the machine this process runs on.

`tuning.json` in the artifact directory holds one record per device, keyed by
`host.device_key(host.device())`:

    {"format": "edgecnn-tuning/1",
     "devices": {"f20ff98b3763": {"device": {"cpu_model": "AMD EPYC", "isa": [...], ...},
                                  "runtime": "onnxruntime", "runtime_version": "1.31.1",
                                  "threads": 2, "file": "model.int8.onnx",
                                  "candidate": "int8", "int8_sha256": "...", ...}}}

A record fits this machine when its key is this machine's, its runtime is installed at the
version it was measured with, and the int8 file it was measured against is the one in the
artifact now. `load(runtime="auto")`, `predict` and `bench` use a fitting record and say in
one line when there is none. Torch-free and onnx-free, like the rest of the runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError

FORMAT = "edgecnn-tuning/1"
FILE = "tuning.json"


@dataclass(frozen=True)
class Tuned:
    key: str
    record: dict[str, Any]

    @property
    def file(self) -> str:
        return self.record["file"]

    @property
    def runtime(self) -> str:
        return self.record["runtime"]

    @property
    def threads(self) -> int:
        return int(self.record["threads"])

    def line(self) -> str:
        r = self.record
        return (f"tuned for this machine ({r['device']['cpu_model']}, {r['date']}): "
                f"{r['file']} in {r['runtime']}, {r['threads']} thread(s), "
                f"{r['chosen_ms']:.3f} ms measured")


def read_tunings(artifact: str | Path) -> dict[str, dict[str, Any]]:
    """device key -> record; {} when the artifact was never tuned."""
    path = Path(artifact) / FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EdgeCNNError(f"{path}: not a readable tuning record ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("devices"), dict):
        raise EdgeCNNError(f"{path}: not an {FORMAT} file")
    return data["devices"]


def runtime_version(runtime: str) -> str | None:
    import importlib.metadata

    names = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino"),
             "openvino": ("openvino",)}.get(runtime, (runtime,))
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def require_artifact_dir(path: str | Path) -> None:
    """Tuning is recorded in the directory export wrote: a file given instead is named so."""
    if Path(path).is_dir():
        return
    if Path(path).exists():
        raise EdgeCNNError(f"{path}: not an artifact directory (give the directory edgecnn "
                           "export wrote, not a file in it)")
    raise EdgeCNNError(f"{path}: no such artifact directory")


def for_this_machine(artifact: str | Path) -> tuple[Tuned | None, str]:
    """(the fitting record or None, one line saying which and why)."""
    from edgecnn.fileio import file_sha256
    from edgecnn.host import device, device_key

    artifact = Path(artifact)
    tunings = read_tunings(artifact)
    if not tunings:
        if not (artifact / "model.int8.onnx").is_file():  # tune would refuse it
            return None, "not tuned: it has no int8 file, so there is nothing to tune"
        return None, f"not tuned: `edgecnn tune {artifact}` measures int8 placement, " \
                     "runtime and threads on this machine"
    key = device_key(device())
    record = tunings.get(key)
    if record is None:
        where = ", ".join(sorted({r["device"]["cpu_model"] for r in tunings.values()}))
        return None, f"tuned elsewhere ({where}), not on this machine: untuned defaults"
    version = runtime_version(record["runtime"])
    if version != record["runtime_version"]:
        return None, (f"tuned with {record['runtime']} {record['runtime_version']}, this "
                      f"machine has {version or 'none'}: untuned defaults")
    int8 = artifact / "model.int8.onnx"
    if not int8.is_file() or file_sha256(int8) != record["int8_sha256"]:
        return None, "model.int8.onnx changed since it was tuned: untuned defaults"
    if not (artifact / record["file"]).is_file():
        return None, f"the tuned file {record['file']} is missing: untuned defaults"
    tuned = Tuned(key, record)
    return tuned, tuned.line()
