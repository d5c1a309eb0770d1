"""`--remote DEST` against a real OpenSSH server on 127.0.0.1 (Debian's openssh-server,
installed here where missing): a throwaway host key and client key, the server's own
AuthorizedKeysFile, and the client's own ssh_config and known_hosts ($EDGECNN_SSH_CONFIG,
as `ssh -F`). The device's side is a base-install venv made by edgecnn's own bootstrap from
a wheelhouse (numpy, onnxruntime, Pillow, onnx: downloaded once into ~/.cache), no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, default_sigint
from tests.export_helpers import CostTimer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("remote")]

WEIRD = "art 'q' ;$(touch pwned)"  # spaces, quotes, ; and $(): reach the device as a name


def _install_sshd() -> str:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install "
                       "-y -q openssh-server openssh-client", shell=True, check=False,
                       capture_output=True)
    if not Path(sshd).exists():
        pytest.fail("OpenSSH's server is not installed and could not be: "
                    "apt-get install openssh-server")
    return sshd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wheelhouse() -> Path:
    """The device's dependencies as wheels, the versions installed here (downloaded once)."""
    import importlib.metadata as md

    pins = [f"{n}=={md.version(n)}" for n in ("numpy", "onnxruntime", "pillow", "onnx")]
    house = Path.home() / ".cache" / "edgecnn-tests" / ("wheelhouse-" + "-".join(pins))
    if not house.is_dir():
        tmp = house.with_name(house.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary",
                        ":all:", "-d", str(tmp), *pins], check=True)
        tmp.rename(house)
    return house


@contextlib.contextmanager
def loopback_sshd(d: Path) -> Iterator[tuple[Path, Path, Path | None, subprocess.Popen]]:
    """A real sshd on 127.0.0.1 with its keys, config and client side in the empty directory
    `d`: (ssh_config, the device cache of Host edgedev, a full-disk tmpfs or None, the
    server), with $EDGECNN_SSH_CONFIG set meanwhile; the server is stopped by its pid.
    benchmarks/remote/loopback.py measures against it too."""
    sshd = _install_sshd()
    for name in ("host", "client", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                       check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    port, cache = _free_port(), d / "device-cache"
    cache.mkdir()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "AcceptEnv EDGECNN_CACHE\n")
    full = d / "full"  # a 3 MB tmpfs: the device's disk that fills up
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(full)],
                             capture_output=True).returncode == 0
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "bad_known_hosts").write_text(
        f"[127.0.0.1]:{port} {' '.join((d / 'other.pub').read_text().split()[:2])}\n")
    user = os.environ.get("USER") or "root"
    common = (f"  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentitiesOnly yes\n"
              f"  StrictHostKeyChecking yes\n  SetEnv EDGECNN_CACHE={cache}\n")
    (d / "ssh_config").write_text(
        f"Host edgedev\n{common}  IdentityFile {d / 'client'}\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n"
        f"Host wrongkey\n{common}  IdentityFile {d / 'other'}\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n"
        f"Host changedhost\n{common}  IdentityFile {d / 'client'}\n"
        f"  UserKnownHostsFile {d / 'bad_known_hosts'}\n"
        f"Host fulldisk\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
        f"  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n  SetEnv EDGECNN_CACHE={full}\n"
        f"  IdentityFile {d / 'client'}\n  UserKnownHostsFile {d / 'known_hosts'}\n"
        f"Host closedport\n  HostName 127.0.0.1\n  Port {_free_port()}\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n"
        + "".join(f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
                  f"  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n"
                  f"  SetEnv EDGECNN_CACHE={d / alias}\n  IdentityFile {d / 'client'}\n"
                  f"  UserKnownHostsFile {d / 'known_hosts'}\n"
                  for alias in ("freshdev", "armdev")))  # devices with their own caches
    server = subprocess.Popen([sshd, "-D", "-f", str(d / "sshd_config"), "-E",
                               str(d / "sshd.log")])
    deadline = time.time() + 20
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-300:]}")
    old = os.environ.get("EDGECNN_SSH_CONFIG")
    os.environ["EDGECNN_SSH_CONFIG"] = str(d / "ssh_config")
    try:
        yield d / "ssh_config", cache, (full if mounted else None), server
    finally:
        if mounted:
            subprocess.run(["umount", str(full)], capture_output=True)
        if old is None:
            os.environ.pop("EDGECNN_SSH_CONFIG", None)
        else:
            os.environ["EDGECNN_SSH_CONFIG"] = old
        if server.poll() is None:  # the server and its session processes, by pid
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """(ssh_config path, device cache dir, wheelhouse, full-disk tmpfs, server)."""
    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as (config, cache, full, server):
        yield config, cache, _wheelhouse(), full, server


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecnn.export import ExportSpec, Int8Spec, ZooSource, export

    out = tmp_path_factory.mktemp("remote") / WEIRD
    export(ExportSpec(ZooSource("mobilenet", alpha=0.25, resolution=32, num_classes=10),
                      int8=Int8Spec("random", calib_samples=8, timer=CostTimer(0.5)),
                      output=str(out)))  # its int8 verdict is not under test: costs counted
    return out


def _cli(capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    from edgecnn.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_tune_and_predict_on_the_device(sshd, artifact: Path, tmp_path: Path,
                                              capsys) -> None:  # noqa: ANN001
    _, cache, house, _, _ = sshd
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "edgedev",
                          "--wheelhouse", str(house), "--precision", "fp32,int8", "--iters",
                          "10", "--rounds", "2", "--threads", "1", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {r["host"] for r in data["records"]} == {"edgedev"}
    assert {r["precision"] for r in data["records"]} == {"fp32", "int8"}
    assert {r["model"] for r in data["records"]} == {WEIRD}
    remote = data["conditions"]["remote"]["edgedev"]
    assert remote["hostname"] == socket.gethostname() and remote["cpu_model"]
    assert "installing edgecnn" in err  # the first run bootstraps, and says so
    # the Jetson's tools around the bench: absent here, and the record says so
    jetson = remote["jetson"]
    assert jetson["tools"] == dict.fromkeys(("nvpmodel", "jetson_clocks", "tegrastats"),
                                            "absent")
    assert jetson["power"] == "not sampled: no tegrastats on the device"
    assert jetson["power_mode"] == "not recorded: no nvpmodel on the device"
    assert jetson["clocks"].startswith("as they were (not pinned")
    venv_python = remote["python"]
    assert venv_python.startswith(str(cache))
    # the device's install has no torch: it cannot import it
    probe = subprocess.run([venv_python, "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0 and b"No module named 'torch'" in probe.stderr
    assert not list(Path(ROOT).glob("pwned")) and not list(cache.rglob("pwned"))
    # a second run: the same venv, the artifact not sent again (content-addressed)
    pushed = sorted(cache.glob("remote/artifacts/*"))
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "edgedev",
                          "--wheelhouse", str(house), "--iters", "5", "--rounds", "1",
                          "--max-clocks", "--format", "md")
    assert code == 0 and "installing edgecnn" not in err and "| edgedev |" in out, err
    assert sorted(cache.glob("remote/artifacts/*")) == pushed
    # --max-clocks asked of a device without jetson_clocks: said, in the device's line
    device_line = next(ln for ln in out.splitlines() if ln.startswith("> device edgedev: "))
    assert "Jetson tools absent" in device_line
    assert "--max-clocks asked, but no jetson_clocks on the device" in device_line
    assert list(cache.glob("remote/runs/*")) == []  # each run's record was taken back
    # tune there: the record comes back into the local artifact
    code, out, err = _cli(capsys, "tune", str(artifact), "--remote", "edgedev", "--threads",
                          "1", "--runtime", "onnxruntime", "--wheelhouse", str(house))
    assert code == 0, err
    (record,) = json.loads((artifact / "tuning.json").read_text())["devices"].values()
    assert record["remote"] == "edgedev" and (artifact / record["file"]).is_file()
    # predict there, with an image whose name is hostile too
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = tmp_path / "it's $(x); a photo.jpg"
    shutil.copy(photo, image)
    code, out, err = _cli(capsys, "predict", str(artifact), str(image), "--remote", "edgedev",
                          "--wheelhouse", str(house), "--json", "--topk", "1")
    assert code == 0, err
    assert str(image) in out and json.loads(out)


def test_fit_measures_latency_on_the_device(sshd, artifact: Path, tmp_path: Path,
                                            capsys) -> None:  # noqa: ANN001
    """`edgecnn fit --remote`: every latency fit takes (the per-layer table, the grid timed
    whole, the candidates side by side, the shipped file) comes from the device's own bench;
    training and export stay here; fit.json names the device."""
    _, cache, house, _, _ = sshd
    fit_dir = tmp_path / "fit"
    args = ["fit", "mobilenet", "--data", "digits", "--latency-ms", "50", "--alphas", "0.25",
            "--resolutions", "32", "--epochs", "1", "--wheelhouse", str(house)]
    code, out, err = _cli(capsys, *args, "--remote", "edgedev", "--threads", "1", "-o",
                          str(fit_dir), "--json", "--no-progress")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["device"]["remote"] == "edgedev"
    assert rec["device"]["hostname"] == socket.gethostname() and rec["threads"] == 1
    chosen = rec["candidates"][rec["chosen"]]
    assert chosen["latency_source"] == "measured" and chosen["latency_ms"] > 0
    assert rec["noise"]["timed_twice"] is not None
    # what was timed went to the device as numbered files, and was timed there
    assert any(cache.glob("remote/artifacts/*/fit/f00000.onnx"))
    # an int8 file (an int8 candidate's, as shipped) times there as any other
    from edgecnn.remote.measure import RemoteMeasure

    measure = RemoteMeasure.connect("edgedev", 1, wheelhouse=house)
    ms = measure.time({"int8": artifact / "model.int8.onnx", "fp32": artifact / "model.onnx"})
    assert set(ms) == {"int8", "fp32"} and min(ms.values()) > 0
    # the threads are the device's to allow; an unreachable device is one line, no DIR
    code, out, err = _cli(capsys, *args, "--remote", "edgedev", "--threads", "999", "-o",
                          str(tmp_path / "never"))
    assert code == 2 and "--threads must be 1.." in err and "edgedev's cores" in err, err
    code, out, err = _cli(capsys, *args, "--remote", "closedport", "-o",
                          str(tmp_path / "never"))
    assert code == 2 and [ln for ln in err.splitlines() if "error" in ln] == [
        "edgecnn: error: closedport: host unreachable"], err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(("host", "words"), [
    ("closedport", "host unreachable"),
    ("wrongkey", "authentication refused"),
    ("changedhost", "host key verification failed"),
    ("nosuchhost.invalid", "unknown host"),
])
def test_faults_are_one_line_naming_the_device(sshd, artifact: Path, capsys, host: str,
                                               words: str) -> None:  # noqa: ANN001
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", host, "--iters", "5")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and f"{host}: {words}" in lines[0], err


def test_no_python_on_the_device_and_a_fleet_keeps_going(sshd, artifact: Path,
                                                         capsys) -> None:  # noqa: ANN001
    _, _, house, _, _ = sshd
    code, out, err = _cli(capsys, "predict", str(artifact), str(artifact / "export.json"),
                          "--remote", "edgedev", "--remote-python", "/nonexistent/python3")
    assert code == 2 and "edgedev: no /nonexistent/python3 on the device" in err
    # a fleet where one device is unreachable: the other's rows, and one line, exit 2
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "edgedev", "--remote",
                          "closedport", "--wheelhouse", str(house), "--iters", "5",
                          "--rounds", "1")
    assert code == 2 and "edgedev" in out
    assert [ln for ln in err.splitlines() if "error" in ln] == [
        "edgecnn: error: closedport: host unreachable"]


def test_a_devices_file_names_devices_and_tags(sshd, artifact: Path, tmp_path: Path,
                                               monkeypatch, capsys) -> None:  # noqa: ANN001
    _, _, house, _, _ = sshd
    config = tmp_path / "config" / "edgecnn"
    config.mkdir(parents=True)
    (config / "devices.yaml").write_text(
        "devices:\n  - {name: bench-box, destination: edgedev, python: python3, tags: [x86]}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "tag:x86",
                          "--wheelhouse", str(house), "--iters", "5", "--rounds", "1")
    assert code == 0 and "bench-box" in out, err
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "tag:gpu")
    assert code == 2 and "no device in" in err and "has that tag" in err


def test_a_full_disk_on_the_device_is_one_line_and_nothing_half_written(
        sshd, artifact: Path, capsys) -> None:  # noqa: ANN001
    _, _, house, full, _ = sshd
    if full is None:
        pytest.fail("could not mount a tmpfs for the full-disk fault (needs root)")
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "fulldisk",
                          "--wheelhouse", str(house), "--iters", "5")
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("edgecnn: error: fulldisk: ") \
        and "No space left on device" in lines[-1], err
    leftovers = [p for p in full.rglob("*") if p.name.startswith(".")]
    assert leftovers == []  # every temporary name was removed


def _temporaries(root: Path) -> list[Path]:
    """Temporary names left anywhere outside an installed venv: the agent's (".NAME." and
    mkdtemp's 8 characters) and edgecnn.fileio's (the same, then ".tmp")."""
    import re

    return [p for p in root.rglob(".*")
            if re.fullmatch(r"\..+\.[a-z0-9_]{8}(\.tmp)?", p.name)
            and not any(part.startswith("venv-") for part in p.relative_to(root).parts[:-1])]


def test_a_version_that_cannot_be_installed_is_one_line_and_no_venv(
        sshd, artifact: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """This edgecnn cannot be installed on a device without a route to a package index whose
    wheelhouse lacks onnxruntime: pip fails for real there. One line, and no venv (nor a
    half-made one) in the device's cache; the next run starts from nothing again."""
    config, _, house, _, _ = sshd
    partial = tmp_path / "wheelhouse"
    partial.mkdir()
    for whl in [*house.glob("*.whl"), _pip_wheel()]:
        if not whl.name.startswith("onnxruntime-"):
            shutil.copy(whl, partial / whl.name)
    # and its Python has no ensurepip, as Debian's without python3-venv: pip runs from the
    # wheelhouse's pip wheel (sitecustomize hides ensurepip from the agent's find_spec)
    hide = tmp_path / "no-ensurepip"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['ensurepip'] = None\n")
    python = tmp_path / "python3-without-venv"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={hide} exec python3 \"$@\"\n")
    python.chmod(0o755)
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "freshdev",
                          "--remote-python", str(python), "--wheelhouse", str(partial),
                          "--iters", "5")
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 2 and out == "" and len(errors) == 1, err
    assert errors[0].startswith("edgecnn: error: freshdev: pip could not install edgecnn on "
                                "the device: ") and "onnxruntime" in errors[0], err
    fresh = config.parent / "freshdev" / "remote"
    assert fresh.is_dir() and not list(fresh.glob("*venv-*")) and _temporaries(fresh) == []


def _processes_with(*words: str) -> list[int]:
    """Pids whose command line holds every one of `words` (as whole arguments)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and all(w.encode() in argv for w in words):
            found.append(int(proc.name))
    return found


def _bench_process(duration: str) -> list[int]:
    """The device's `python -m edgecnn bench ... --duration D` (not the agent around it,
    whose command line holds the same words after its own `-c`)."""
    found = []
    for pid in _processes_with("-m", "edgecnn", "bench", "--duration", duration):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-c" not in argv:
            found.append(pid)
    return found


def test_a_timeout_is_one_line_and_stops_the_command_on_the_device(
        sshd, artifact: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """--remote-timeout against a real run: a 61 s bench stopped after 10 s. The bench's
    process on the device is gone (the agent kills its process group when the connection
    closes), and nothing is written, neither here (-o) nor in the device's cache."""
    import threading

    _, cache, house, _, _ = sshd
    output = tmp_path / "out" / "bench.json"
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # the bench really ran on the device before the timeout
        while not done.is_set():
            seen.extend(_processes_with("bench", "--duration", "61.0"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "edgedev",
                              "--wheelhouse", str(house), "--duration", "61", "--rounds", "1",
                              "--threads", "1",  # the device is this machine: one core
                              "--remote-timeout", "10", "-o", str(output))
    finally:
        done.set()
        watcher.join()
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert code == 2 and out == "" and errors == [
        "edgecnn: error: edgedev: timed out after 10 s (edgecnn bench; stopped on the "
        "device)"], err
    assert seen, "the bench never started on the device"
    deadline = time.time() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in seen) and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in seen if Path(f"/proc/{pid}").exists()]
    assert not output.exists() and not output.parent.exists()
    assert _temporaries(cache) == []


def test_ctrl_c_stops_the_command_here_and_on_the_device(sshd, artifact: Path,
                                                         tmp_path: Path) -> None:
    """SIGINT to the workstation's `edgecnn bench --remote` (a real process, as a terminal's
    Ctrl-C reaches it; only edgecnn's process, not its ssh, so edgecnn itself must end the
    connection) during a 62 s bench on the device: edgecnn's interrupted status and line,
    the bench's processes on the device gone, nothing written here or in the device's
    cache (the Jetson record of the interrupted run included)."""
    _, cache, house, _, _ = sshd
    output = tmp_path / "out" / "bench.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "bench", str(artifact), "--remote", "edgedev",
         "--wheelhouse", str(house), "--duration", "62", "--rounds", "1", "-o", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=default_sigint)
    try:
        deadline = time.time() + 600  # a first run bootstraps the device's venv first
        seen: list[int] = []
        while not seen and proc.poll() is None and time.time() < deadline:
            seen = _processes_with("bench", "--duration", "62.0")
            time.sleep(0.1)
        assert seen, f"the bench never started on the device: {proc.communicate()[1]}"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = err.strip().splitlines()
    assert proc.returncode == 130 and out == "" and lines[-1] == "edgecnn: interrupted", err
    assert "Traceback" not in err and [ln for ln in lines if "error" in ln] == [], err
    deadline = time.time() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in seen) and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in seen if Path(f"/proc/{pid}").exists()]
    assert not output.exists() and not output.parent.exists()
    assert _temporaries(cache) == [] and list(cache.glob("remote/runs/*")) == []


def _arm64_userland() -> Path:
    """deploy/arm64's userland, with this checkout's edgecnn in its site-packages (built once,
    cached under ~/.cache/edgecnn, refreshed when the code changes; the test fails with
    setup_userland.sh's one-line reason where it cannot be built)."""
    setup = subprocess.run(["bash", str(ROOT / "deploy" / "arm64" / "setup_userland.sh")],
                           env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                           text=True, timeout=900)
    if setup.returncode != 0:
        lines = setup.stderr.strip().splitlines() or [f"exit status {setup.returncode}"]
        pytest.fail(f"the arm64 userland could not be built: {lines[-1]}", pytrace=False)
    return ROOT / "deploy" / "arm64" / "python.sh"


def _pip_wheel() -> Path:
    """pip's own wheel (downloaded once): what a device's Python without ensurepip (Debian
    without python3-venv) bootstraps pip from."""
    import importlib.metadata as md

    pip = Path.home() / ".cache" / "edgecnn-tests" / f"pip-{md.version('pip')}"
    if not pip.is_dir():
        tmp = pip.with_name(pip.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary", ":all:", "-d", str(tmp), f"pip=={md.version('pip')}"],
                       check=True)
        tmp.rename(pip)
    (wheel,) = pip.glob("pip-*.whl")
    return wheel


def test_a_fleet_of_two_architectures_gives_one_table_and_one_plot(
        sshd, artifact: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """x86-64 (a venv edgecnn bootstraps from its wheelhouse, seeing the system's packages as
    on a Jetson) and aarch64 (deploy/arm64's userland under qemu-user, reached through the
    same sshd: its devices-file `python` is deploy/arm64/python.sh, whose own edgecnn is
    this code, so it runs that, with no venv), in one run: one merged table naming both
    machines, and a plot with both devices side by side. Emulated latency is no board's
    speed: only that both measured is checked."""
    from edgecnn.bench.plots import fleet_figure
    from edgecnn.bench.report import render
    from edgecnn.timing.harness import BenchRecord

    _, cache, house, _, _ = sshd
    arm_python = _arm64_userland()
    (tmp_path / "config" / "edgecnn").mkdir(parents=True)
    (tmp_path / "config" / "edgecnn" / "devices.yaml").write_text(
        "devices:\n"
        f"  - {{name: x86-box, destination: edgedev, wheelhouse: {json.dumps(str(house))}, "
        "system_site_packages: true, tags: [fleet]}\n"
        f"  - {{name: arm-box, destination: armdev, python: {json.dumps(str(arm_python))}, "
        "tags: [fleet]}\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    output = tmp_path / "fleet.json"
    code, out, err = _cli(capsys, "bench", str(artifact), "--remote", "tag:fleet", "--iters",
                          "3", "--warmup", "1", "--rounds", "1", "--threads", "1", "--format",
                          "json", "-o", str(output))
    assert code == 0, err
    assert "armdev: using the device's own edgecnn" in err and "armdev: installing" not in err
    data = json.loads(output.read_text())
    remote = data["conditions"]["remote"]
    assert remote["x86-box"]["arch"] == "x86_64" and remote["arm-box"]["arch"] == "aarch64"
    assert remote["arm-box"]["python"] == str(arm_python)
    # x86: a venv the bootstrap made in the device's cache, seeing the system's packages
    x86_python = Path(remote["x86-box"]["python"])
    assert x86_python.is_relative_to(cache)
    assert "include-system-site-packages = true" in (
        x86_python.parent.parent / "pyvenv.cfg").read_text()
    records = [BenchRecord(**r) for r in data["records"]]
    asked = [r for r in records if not r.runtime.startswith("fastest:")]
    assert sorted(r.host for r in asked) == ["arm-box", "x86-box"]
    # a device the artifact was tuned on (x86-box is this machine, tuned there by
    # test_bench_tune_and_predict_on_the_device) also gets its tuned row; arm-box was not
    assert all(r.host == "x86-box" for r in records if r not in asked)
    assert all(r.latency_ms_p50 > 0 for r in records)
    table = render(records, "md", data["conditions"])
    rows = [ln for ln in table.splitlines()
            if ln.startswith("| ") and WEIRD in ln and "fastest:" not in ln]
    assert sorted(ln.split("|")[1].strip() for ln in rows) == ["arm-box", "x86-box"]
    devices = [ln for ln in table.splitlines() if ln.startswith("> device ")]
    assert len(devices) == 2, devices
    assert devices[0].startswith("> device x86-box: edgedev (") and "x86_64" in devices[0]
    assert devices[1].startswith("> device arm-box: armdev (") and "aarch64" in devices[1]
    # the plot beside -o, devices side by side
    assert (tmp_path / "fleet.devices.png").stat().st_size > 0
    _, shown = fleet_figure(asked)  # the rows both devices have: one case
    assert shown["devices"] == ["x86-box", "arm-box"] and len(shown["cases"]) == 1
    assert all(v[0] > 0 for v in shown["p50_ms"].values())


ORIN_LINE = ("RAM 2448/7620MB (lfb 2x4MB) CPU [2%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
             "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] cpu@47.5C gpu@45.9C tj@47.5C "
             "VDD_IN 4758mW/4758mW VDD_CPU_GPU_CV 477mW/477mW VDD_SOC 1433mW/1433mW")


def test_on_a_jetson_the_power_mode_clocks_and_power_are_recorded(tmp_path: Path) -> None:
    """The board's tools are not on this machine: stand-ins on PATH answer as JetPack 6's
    do (nvpmodel -q's first line, jetson_clocks --store/--restore, tegrastats printing one
    line per interval until it is stopped). What is checked is edgecnn's side: the power
    mode read, clocks pinned only when asked and restored after, and tegrastats sampled
    while the command ran, not before or after it."""
    from edgecnn.remote.jetson import note, run

    tools, log = tmp_path / "bin", tmp_path / "tools.log"
    tools.mkdir()
    scripts = {
        "nvpmodel": 'echo "NV Power Mode: 15W"; echo 0',
        "jetson_clocks": f'echo "jetson_clocks $*" >> {log}',
        "tegrastats": f'trap "exit 0" TERM; while :; do echo "{ORIN_LINE}"; sleep 0.1; done',
    }
    for name, body in scripts.items():
        (tools / name).write_text(f"#!/bin/bash\n{body}\n")
        (tools / name).chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{tools}:{old}"
    try:
        code, record = run(["sleep", "1.5"], max_clocks=True)
        _, unpinned = run(["sh", "-c", "exit 3"])
    finally:
        os.environ["PATH"] = old
    assert code == 0 and record["power_mode"] == "NV Power Mode: 15W"
    calls = log.read_text().splitlines()
    assert calls[0].startswith("jetson_clocks --store ") and calls[1] == "jetson_clocks " \
        and calls[2].startswith("jetson_clocks --restore ") and len(calls) == 3
    assert record["clocks"].startswith("pinned to maximum by jetson_clocks")
    power = record["power"]
    assert power["rail"] == "VDD_IN" and power["power_w_mean"] == 4.758
    assert 5 <= power["samples"] <= 30 and power["gpu_mhz_mean"] == 305  # ~15 in 1.5 s
    assert unpinned["clocks"].startswith("as they were (not pinned") and len(
        log.read_text().splitlines()) == 3
    assert "power mode NV Power Mode: 15W" in note(record) and "4.758 W mean" in note(record)


def test_the_connection_dropping_mid_run_is_one_line(sshd, artifact: Path) -> None:
    """The last test here: it kills the server and its session processes."""
    import threading

    from edgecnn.remote.device import connect
    from edgecnn.remote.ssh import RemoteError

    _, _, house, _, server = sshd
    dev = connect("edgedev", wheelhouse=house)
    remote = dev.push_artifact(artifact)
    errors: list[str] = []

    def long_bench() -> None:  # on one core: the device is this machine
        try:
            dev.edgecnn(["bench", remote, "--duration", "60", "--rounds", "1", "--threads", "1"])
        except RemoteError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=long_bench)
    thread.start()
    deadline = time.monotonic() + 60
    while not _bench_process("60"):  # the bench itself, not only the agent, runs there
        assert thread.is_alive() and time.monotonic() < deadline, errors
        time.sleep(0.1)
    time.sleep(1)  # mid-run
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                              text=True).stdout.split()
    for pid in [server.pid, *map(int, children)]:
        os.kill(int(pid), signal.SIGKILL)
    server.wait(timeout=10)
    thread.join(timeout=60)
    assert not thread.is_alive() and len(errors) == 1
    assert errors[0].startswith("edgedev: ") and "connection dropped" in errors[0], errors
