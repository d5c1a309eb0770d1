"""The commands, run on devices: `bench`, `tune` and `predict` with `--remote DEST`.

    records, cond = remote_bench(["jetson", "pi@raspberrypi.local"], ["exports/mnv1"],
                                 ["--runtime", "onnxruntime", "--threads", "4"])

A fleet runs in parallel across devices and one at a time on each (the device's lock, taken
by agent.py's `run`, holds whichever workstation asks). A device that fails is one line on
stderr; the others finish, and the command exits non-zero. Results come back as the
command's own JSON: bench's records gain a `host` column and its conditions a `remote`
block per device (destination, hostname, CPU model and ISA flags, cores, board).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError
from edgecnn.remote.device import Device, connect
from edgecnn.remote.ssh import RemoteError

Log = Callable[[str], None]


def devices_file() -> Path:
    import os

    root = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(root) / "edgecnn" / "devices.yaml"


Entry = tuple[str, str, dict[str, Any]]  # (label, ssh destination, connect() overrides)


def resolve(names: Sequence[str]) -> list[Entry]:
    """(label, ssh destination, overrides) for each --remote: a device's name or a tag
    (`tag:jetson`) from ~/.config/edgecnn/devices.yaml, else the destination as given. An
    entry's `python` and `wheelhouse` override --remote-python and --wheelhouse for that
    device (a fleet of two architectures needs two wheelhouses); `system_site_packages:
    true` gives its venv the system's packages (a Jetson's TensorRT bindings):

        devices:
          - {name: orin, destination: ubuntu@orin.local, python: python3.10,
             system_site_packages: true, tags: [jetson]}
          - {name: pi5, destination: pi@raspberrypi.local, wheelhouse: ~/wheels/aarch64,
             tags: [pi, arm]}
    """
    entries = _read_devices()
    out: list[Entry] = []
    for name in names:
        if name.startswith("tag:"):
            tagged = [e for e in entries if name[4:] in (e.get("tags") or [])]
            if not tagged:
                raise EdgeCNNError(f"--remote {name}: no device in {devices_file()} has that "
                                   "tag")
            out += [(e["name"], e["destination"], _overrides(e)) for e in tagged]
            continue
        e = next((e for e in entries if e.get("name") == name), None)
        out.append((name, e["destination"], _overrides(e)) if e else (name, name, {}))
    return out


def _overrides(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if entry.get("python"):
        out["python"] = str(entry["python"])
    if entry.get("wheelhouse"):
        out["wheelhouse"] = Path(str(entry["wheelhouse"])).expanduser()
    if entry.get("system_site_packages"):  # a Jetson: JetPack's TensorRT is system-wide
        out["system_site_packages"] = True
    return out


def _read_devices() -> list[dict[str, Any]]:
    path = devices_file()
    if not path.is_file():
        return []
    try:
        import yaml
    except ImportError:
        raise EdgeCNNError(f"reading {path} needs PyYAML: pip install pyyaml") from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EdgeCNNError(f"{path}: not readable YAML ({str(exc).splitlines()[0]})") from None
    entries = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("destination"), str) for e in entries):
        raise EdgeCNNError(f"{path}: expected `devices:` as a list of {{name, destination, "
                           "python, wheelhouse, tags}}")
    return entries


def _devices_resolved(resolved: Sequence[Entry], log: Log,
                      **kwargs: Any) -> list[Device | RemoteError]:
    def one(entry: Entry) -> Device | RemoteError:
        _, dest, overrides = entry
        return _connect_or_error(dest, log, {**kwargs, **overrides})

    with ThreadPoolExecutor(max_workers=max(1, len(resolved))) as pool:
        return list(pool.map(one, resolved))


def _connect_or_error(dest: str, log: Log, kwargs: dict[str, Any]) -> Device | RemoteError:
    try:
        return connect(dest, log=log, **kwargs)
    except RemoteError as exc:
        return exc


def remote_bench(dests: Sequence[str], targets: Sequence[str], argv: Sequence[str], *,
                 log: Log = lambda line: None, max_clocks: bool = False, **connect_kwargs: Any
                 ) -> tuple[list[Any], dict[str, Any], list[str]]:
    """(records, conditions, failures): `edgecnn bench TARGETS ARGV --format json` on every
    device, the artifacts pushed first; failures are one line per device. Each bench runs
    inside edgecnn/remote/jetson.py: a Jetson's power mode, clocks (pinned only with
    `max_clocks`) and tegrastats power during the run come back with the records, and any
    other device's record says those tools are absent."""
    import uuid

    from edgecnn.remote.jetson import note
    from edgecnn.timing.harness import BenchRecord

    for t in targets:
        if not Path(t).is_dir():
            raise EdgeCNNError(f"{t}: --remote benchmarks artifact directories (export them "
                               "here first)")
    resolved = resolve(dests)
    dests = [label for label, _, _ in resolved]
    devices = _devices_resolved(resolved, log, artifacts=[Path(t) for t in targets],
                                **connect_kwargs)

    def one(dev: Device | RemoteError) -> dict[str, Any] | RemoteError:
        if isinstance(dev, RemoteError):
            return dev
        try:
            remote = [dev.push_artifact(Path(t)) for t in targets]
            side = f"{dev.cache}/runs/{uuid.uuid4().hex}.json"
            wrap = [dev.venv_python, "-m", "edgecnn.remote.jetson", "--out", side,
                    *(["--max-clocks"] if max_clocks else []), "--"]
            out = dev.edgecnn(["bench", *remote, *argv, "--format", "json", "--no-progress"],
                              wrap=wrap)
            return {**json.loads(out), "jetson": json.loads(dev.agent("take", side))}
        except RemoteError as exc:
            return exc
        except ValueError:
            return RemoteError(f"{dev.name}: bench did not answer with JSON")

    pool = ThreadPoolExecutor(max_workers=max(1, len(devices)))
    try:
        results = list(pool.map(one, devices))
    except BaseException:  # Ctrl-C, here in the main thread: the pool would wait for every
        for dev in devices:  # bench to end; closing their connections ends them instead
            if isinstance(dev, Device):
                dev.stop()
        raise
    finally:
        pool.shutdown(wait=True)
    records: list[Any] = []
    cond: dict[str, Any] = {}
    failures = []
    for dest, dev, res in zip(dests, devices, results):
        if isinstance(res, RemoteError):
            failures.append(str(res))
            continue
        labels = dict(zip((Path(r).name for r in _remote_names(targets)),
                          (Path(t).name for t in targets)))
        for r in res["records"]:
            r["model"] = labels.get(r["model"], r["model"])
            r["host"] = dest
            records.append(BenchRecord(**r))
        if not cond:  # the table's conditions: the first device's; each device's own below
            cond = dict(res["conditions"])
            for key in ("tuning", "int8_verdicts", "roofline", "accuracy_of"):  # by artifact
                if isinstance(cond.get(key), dict):
                    cond[key] = {labels.get(k, k): v for k, v in cond[key].items()}
        cond.setdefault("remote", {})[dest] = {
            "destination": dev.name, **dev.identity,
            "python": dev.venv_python, "jetson": res["jetson"],
            "jetson_note": note(res["jetson"]), "conditions": dict(res["conditions"])}
    if len(cond.get("remote", {})) > 1:  # a fleet: the table's first line names each CPU
        devs = cond["remote"]
        cond["cpu"] = "; ".join(f"{k}: {d.get('cpu_model')}" for k, d in devs.items())
        devs = devs.values()
        cond["cpu_cores"] = "/".join(str(d.get("cores")) for d in devs)
    return records, cond, failures


def _remote_names(targets: Sequence[str]) -> list[str]:
    from edgecnn.remote.device import _safe_name

    return [_safe_name(Path(t)) for t in targets]


def _one(name: str) -> Entry:
    found = resolve([name])
    if len(found) != 1:
        raise EdgeCNNError(f"--remote {name} names {len(found)} devices; give one")
    return found[0]


def remote_tune(dest: str, artifact: str, argv: Sequence[str], *, log: Log = lambda line: None,
                **connect_kwargs: Any) -> dict[str, Any]:
    """`edgecnn tune` on the device; its record (and placement file) come back into the
    local artifact's tuning.json, beside the other devices' records. Returns the record."""
    from edgecnn.fileio import atomic_write
    from edgecnn.host import device_key
    from edgecnn.runtime.tuning import FILE, FORMAT, read_tunings, require_artifact_dir

    local = Path(artifact)
    require_artifact_dir(local)
    label, dest, overrides = _one(dest)
    dev = connect(dest, extras=("tune",), artifacts=[local], log=log,
                  **{**connect_kwargs, **overrides})
    remote = dev.push_artifact(local)
    record = json.loads(dev.edgecnn(["tune", remote, *argv, "--json"]))
    if record["file"].startswith("model.int8.tuned-"):
        data = dev.agent("pull", f"{remote}/{record['file']}")
        atomic_write(local / record["file"], data)
    devices = dict(read_tunings(local))
    devices[device_key(record["device"])] = {**record, "remote": label}
    atomic_write(local / FILE, json.dumps({"format": FORMAT, "devices": devices}, indent=2)
                 + "\n")
    return record


def remote_predict(dest: str, artifact: str, images: Sequence[Path], argv: Sequence[str], *,
                   log: Log = lambda line: None, **connect_kwargs: Any) -> bytes:
    """`edgecnn predict` on the device, the images sent with the request; its stdout."""
    _, dest, overrides = _one(dest)
    dev = connect(dest, artifacts=[Path(artifact)], log=log, **{**connect_kwargs, **overrides})
    remote = dev.push_artifact(Path(artifact))
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for i, image in enumerate(images):  # numbered copies: any file name is safe there
            target = Path(tmp) / f"{i:06d}{Path(image).suffix.lower()}"
            target.write_bytes(Path(image).read_bytes())
            names.append((target.name, image))
        remote_images = dev.push_artifact(Path(tmp))
    out = dev.edgecnn(["predict", remote, *[f"{remote_images}/{n}" for n, _ in names], *argv])
    text = out.decode(errors="replace")
    for n, image in names:  # back to the names the user gave
        text = text.replace(f"{remote_images}/{n}", str(image))
    return text.encode()
