"""A device reached by SSH, made ready to run this edgecnn: bootstrap, sync, run.

    dev = connect("pi@raspberrypi.local", log=print)      # probe + bootstrap (cached)
    remote_dir = dev.push_artifact(Path("exports/mnv1"))  # once per content
    out = dev.edgecnn(["bench", remote_dir, "--format", "json"])

A device whose own Python already has this edgecnn (the same code hash: agent.code_hash)
runs that. Otherwise, bootstrap: this edgecnn's base wheel (torch-free), built here from the installed package
and pushed, is installed into a venv in the device's cache, named by version and content
hash, so an unchanged edgecnn is installed once and a changed one never runs stale. Its
dependencies (numpy, onnxruntime, Pillow; onnx for tune) come from the device's own pip
index, or from a wheelhouse the user points at (`--wheelhouse DIR`: pushed, then
`pip --no-index`), for devices without a route to an index. Artifacts are pushed once per
content hash. Everything on the device goes through agent.py's atomic operations.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edgecnn.errors import EdgeCNNError
from edgecnn.remote.agent import AGENT, IDENTITY, code_hash
from edgecnn.remote.ssh import Destination, RemoteError, Ssh, last_line

MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
BOOTSTRAP_TIMEOUT_S = 900
RUN_TIMEOUT_S = 3600.0  # one command on the device (--remote-timeout)


@dataclass
class Device:
    ssh: Ssh
    python: str  # the device's interpreter that runs the agent
    cache: str  # the device's edgecnn cache (absolute)
    hostname: str
    venv_python: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = lambda line: None
    timeout: float = RUN_TIMEOUT_S  # seconds one edgecnn command may run there
    known: set[str] = field(default_factory=set)  # artifacts there already (under the cache)
    running: set[subprocess.Popen] = field(default_factory=set)  # edgecnn() calls in flight
    stopped: bool = False  # stop() was called: no command starts any more

    def stop(self) -> None:
        """End this device's commands from another thread (Ctrl-C reaches only the main
        thread, and a fleet's commands run in a pool's): each connection closes, so the
        agent kills the command's process group on the device."""
        self.stopped = True
        for proc in list(self.running):
            proc.kill()

    @property
    def name(self) -> str:
        return self.ssh.dest.text

    def agent(self, *words: str, stdin: bytes | None = None, timeout: float = 600,
              python: str | None = None) -> bytes:
        return self.ssh.run([python or self.python, "-c", AGENT, *words], stdin=stdin,
                            timeout=timeout, what=f"agent {words[0]}").stdout

    def push_artifact(self, path: Path) -> str:
        """The artifact's directory on the device, sent only when its content is new."""
        rel = artifact_name(path)
        remote = f"{self.cache}/{rel}"
        if rel in self.known:  # the probe saw it there
            return remote
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for f in sorted(p for p in path.iterdir() if p.is_file() and
                            not p.name.startswith(".")):
                tar.add(f, arcname=f.name)
        self.agent("untar", remote, stdin=buf.getvalue())
        self.known.add(rel)
        return remote

    def edgecnn(self, argv: list[str], *, timeout: float | None = None,
                wrap: list[str] = (), module: str = "edgecnn") -> bytes:
        """`edgecnn ARGV` (inside `wrap`, a command that runs the rest; `module`: another
        of edgecnn's modules run as a program) on the device under its lock; stdout. Ctrl-C
        here, or `timeout`
        (default: the device's), ends it there: closing the connection makes the agent kill
        the command's process group."""
        timeout = self.timeout if timeout is None else timeout
        words = [self.python, "-c", AGENT, "run", f"{self.cache}/device.lock", *wrap,
                 self.venv_python, "-m", module, *argv]
        proc = subprocess.Popen(self.ssh.argv(words), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.running.add(proc)
        if self.stopped:  # stop() ran while this was starting
            proc.kill()
        # stdin stays open while the command runs: the agent kills it when stdin closes
        # (communicate() would close it at once), so output is read by threads
        chunks: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda k=k, f=f: chunks.__setitem__(k, f.read()),
                                    daemon=True)
                   for k, f in (("out", proc.stdout), ("err", proc.stderr))]
        for r in readers:
            r.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RemoteError(f"{self.name}: timed out after {timeout:g} s (edgecnn {argv[0]}; "
                              "stopped on the device)") from None
        except BaseException:  # Ctrl-C: the connection closes, the agent kills the command
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdin.close()
            self.running.discard(proc)
        for r in readers:
            r.join()
        out, err = chunks.get("out", b""), chunks.get("err", b"")
        if proc.returncode == 255:
            from edgecnn.remote.ssh import ssh_fault

            raise RemoteError(f"{self.name}: {ssh_fault(err.decode(errors='replace'))}")
        if proc.returncode != 0:
            raise RemoteError(f"{self.name}: {last_line(err) or f'exit {proc.returncode}'}")
        return out


def connect(dest: str, *, python: str = "python3", wheelhouse: Path | None = None,
            extras: tuple[str, ...] = (), options: tuple[str, ...] = (),
            timeout: float = RUN_TIMEOUT_S, artifacts: Sequence[Path] = (),
            system_site_packages: bool = False,
            log: Callable[[str], None] = lambda line: None) -> Device:
    """Probe the device and bootstrap this edgecnn there (see the module doc). A device
    that is ready (this edgecnn installed, `artifacts` there) costs one round trip."""
    from edgecnn import __version__

    ssh = Ssh(Destination.parse(dest), options)
    wheel = build_wheel()
    tag = hashlib.sha256(wheel[1]).hexdigest()[:12]
    venv = (f"venv-{__version__}-{tag}{'-' + '-'.join(extras) if extras else ''}"
            f"{'-system' if system_site_packages else ''}")
    try:
        probe = json.loads(ssh.run([python, "-c", AGENT, "probe", venv,
                                    *map(artifact_name, artifacts)], timeout=120,
                                   what="agent probe").stdout)
    except RemoteError as exc:
        if "not found" in str(exc) or "No such file" in str(exc):
            raise RemoteError(f"{dest}: no {python} on the device (edgecnn needs Python "
                              f"{'.'.join(map(str, MIN_PYTHON))}+)") from None
        raise
    except ValueError:
        raise RemoteError(f"{dest}: {python} did not answer the probe") from None
    version = tuple(probe["python"])
    if version < MIN_PYTHON:
        raise RemoteError(f"{dest}: the device's {python} is "
                          f"{'.'.join(map(str, version))}; edgecnn needs Python "
                          f"{'.'.join(map(str, MIN_PYTHON))}+ (give --remote-python)")
    dev = Device(ssh, python, probe["cache"], probe["hostname"], log=log, timeout=timeout,
                 known=set(probe.get("have", [])))
    dev.venv_python = f"{dev.cache}/{venv}/bin/python"
    info = probe.get("venv")
    own = probe.get("own") or {}
    if info is None and own.get("hash") == code_hash(code_files()) and (
            own.get("onnx") or "tune" not in extras):
        # the device's Python has this very edgecnn (same code, e.g. a userland or image
        # built from this checkout's wheel): run it, with its packages, instead of a venv
        dev.venv_python = python
        log(f"{dest}: using the device's own edgecnn {__version__} (the same code as here)")
        info = json.loads(ssh.run([python, "-c", IDENTITY], timeout=120,
                                  what="identity").stdout)
    if info is None:  # not installed yet (or not runnable): install, then ask it
        _bootstrap(dev, wheel, f"{dev.cache}/{venv}", wheelhouse, extras,
                   system_site_packages)
        info = json.loads(ssh.run([dev.venv_python, "-c", IDENTITY], timeout=120,
                                  what="identity").stdout)
    dev.identity = {**info["device"], "hostname": dev.hostname, "edgecnn": info["edgecnn"],
                    "python_version": ".".join(map(str, version))}
    log(f"{dest}: {info['edgecnn']} on {dev.identity.get('cpu_model')} ({dev.venv_python})")
    return dev


def _bootstrap(dev: Device, wheel: tuple[str, bytes], venv: str, wheelhouse: Path | None,
               extras: tuple[str, ...], system_site_packages: bool) -> None:
    from edgecnn import __version__

    tag = hashlib.sha256(wheel[1]).hexdigest()[:12]
    dev.log(f"{dev.name}: installing edgecnn {__version__} into {venv} (first run)")
    start = time.perf_counter()
    remote_wheel = f"{dev.cache}/wheels/{tag}/{wheel[0]}"
    dev.agent("put", remote_wheel, stdin=wheel[1], timeout=300)
    house = "-"
    if wheelhouse is not None:
        if not Path(wheelhouse).is_dir():
            raise EdgeCNNError(f"--wheelhouse {wheelhouse}: no such directory")
        house = dev.push_artifact(Path(wheelhouse))
    dev.agent("venv", venv, remote_wheel, house, ",".join(extras) or "-",
              "system" if system_site_packages else "-", timeout=BOOTSTRAP_TIMEOUT_S)
    dev.log(f"{dev.name}: installed in {time.perf_counter() - start:.1f} s")


def code_files() -> dict[str, bytes]:
    """This edgecnn's code as the wheel holds it ({name in the wheel: bytes}), from the
    installed package (a checkout's editable install too): what agent.code_hash sums."""
    from importlib.resources import files

    import edgecnn

    pkg = Path(edgecnn.__file__).parent
    entries: dict[str, bytes] = {}
    for path in sorted(pkg.rglob("*.py")):
        if "__pycache__" not in path.parts:
            entries[f"edgecnn/{path.relative_to(pkg).as_posix()}"] = path.read_bytes()
    recipes = files("edgecnn.recipes")
    for item in sorted(recipes.iterdir(), key=lambda p: p.name):
        if item.name.endswith((".yaml", ".py")):
            entries[f"edgecnn/recipes/{item.name}"] = item.read_bytes()
    return entries


def build_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of this edgecnn as a pure-Python wheel (code_files), with the base
    dependencies and the tune extra."""
    import importlib.metadata

    import edgecnn

    version = edgecnn.__version__
    entries = code_files()
    try:
        requires = importlib.metadata.metadata("edgecnn").get("Requires-Python", ">=3.10")
    except importlib.metadata.PackageNotFoundError:
        requires = ">=3.10"
    dist = f"edgecnn-{version}.dist-info"
    entries[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: edgecnn\nVersion: {version}\n"
        f"Requires-Python: {requires}\nRequires-Dist: numpy>=1.24\n"
        "Requires-Dist: onnxruntime>=1.18\nRequires-Dist: pillow>=10\nProvides-Extra: tune\n"
        "Requires-Dist: onnx>=1.16; extra == \"tune\"\n").encode()
    entries[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: edgecnn.remote\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    entries[f"{dist}/entry_points.txt"] = b"[console_scripts]\nedgecnn = edgecnn.cli.main:main\n"
    record = [f"{name},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}"
              for name, data in entries.items()] + [f"{dist}/RECORD,,"]
    entries[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():  # fixed times: the same code, the same bytes
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return f"edgecnn-{version}-py3-none-any.whl", buf.getvalue()


def artifact_name(path: Path) -> str:
    """Where an artifact lives under the device's cache: by content, then by name."""
    return f"artifacts/{artifact_hash(path)[:16]}/{_safe_name(path)}"


def artifact_hash(path: Path) -> str:
    """One hash of a directory's files (names and contents): the project's file hash, each."""
    from edgecnn.fileio import file_sha256
    from edgecnn.runtime.tuning import require_artifact_dir

    require_artifact_dir(path)
    parts = [f"{p.name}:{file_sha256(p)}" for p in sorted(Path(path).iterdir())
             if p.is_file() and not p.name.startswith(".")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _safe_name(path: Path) -> str:
    name = Path(path).resolve().name
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "artifact"


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
