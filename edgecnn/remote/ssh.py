"""Commands on a device reached by SSH, through OpenSSH's own client.

Why OpenSSH's `ssh` rather than a Python SSH library: it is what the user already reaches
the device with, so `~/.ssh/config` (Host aliases, ProxyJump, ports, identities), the agent
and `known_hosts` apply exactly as they do at the user's prompt, with no second
implementation to disagree with them ($EDGECNN_SSH_CONFIG names another ssh_config, as
`ssh -F` does); it is on every workstation, and it adds no dependency
to the device kit. Host key checking stays the user's setting (on by default): a changed
host key is refused by ssh itself and reported in one line, never accepted. BatchMode: no
password prompt, and no password is ever stored.

Every remote command is an argv list, each word quoted with shlex.quote: paths and names
with spaces, quotes, `;` or `$()` reach the device as they are, never as shell syntax.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass

from edgecnn.errors import EdgeCNNError

CONNECT_TIMEOUT_S = 10


class RemoteError(EdgeCNNError):
    """One line naming the device, for every fault on the way to it or on it."""


@dataclass(frozen=True)
class Destination:
    """What `ssh` accepts: `user@host`, a Host alias of ~/.ssh/config, `ssh://user@host:port`."""

    text: str
    host: str  # user@host or alias, as ssh takes it
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Destination:
        if not isinstance(text, str) or not text.strip():
            raise EdgeCNNError(f"--remote needs a destination (user@host, a Host alias or "
                               f"ssh://user@host:port), got {text!r}")
        text = text.strip()
        if text.startswith("ssh://"):
            m = re.fullmatch(r"ssh://([^/:@\s]+@)?([^/:@\s]+|\[[0-9a-fA-F:]+\])(?::(\d+))?/?",
                             text)
            if not m:
                raise EdgeCNNError(f"--remote {text!r}: expected ssh://[user@]host[:port]")
            host = (m.group(1) or "") + m.group(2).strip("[]")
            return cls(text, host, int(m.group(3)) if m.group(3) else None)
        if text.startswith("-") or re.search(r"\s", text):
            raise EdgeCNNError(f"--remote {text!r}: not an ssh destination")
        return cls(text, text)


@dataclass(frozen=True)
class Ssh:
    dest: Destination
    options: tuple[str, ...] = ()  # extra `-o` options (tests: their own config file)

    def argv(self, words: list[str]) -> list[str]:
        port = ["-p", str(self.dest.port)] if self.dest.port else []
        config = os.environ.get("EDGECNN_SSH_CONFIG")  # like `ssh -F FILE`
        port = (["-F", config] if config else []) + port
        return ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", *self.options,
                *port, self.dest.host, "--", " ".join(shlex.quote(w) for w in words)]

    def run(self, words: list[str], *, stdin: bytes | None = None, timeout: float = 600,
            check: bool = True, what: str | None = None) -> subprocess.CompletedProcess:
        """Run `words` on the device (an argv, quoted word by word); stdout and stderr as
        bytes. A fault of ssh itself (exit 255) or a non-zero exit with `check` is one
        RemoteError naming the device (and `what` ran, else the command's start)."""
        what = what or _short(words)
        try:
            proc = subprocess.run(self.argv(words), input=stdin, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.dest.text}: timed out after {timeout:g} s "
                              f"({what})") from None
        except FileNotFoundError:
            raise EdgeCNNError("--remote needs OpenSSH's client (ssh) on this machine") \
                from None
        if proc.returncode == 255:
            why = ssh_fault(proc.stderr.decode(errors="replace"))
            raise RemoteError(f"{self.dest.text}: {why}")
        if check and proc.returncode != 0:
            why = last_line(proc.stderr) or f"exit status {proc.returncode}"
            raise RemoteError(f"{self.dest.text}: {why} ({what})")
        return proc


def ssh_fault(stderr: str) -> str:
    """ssh's own failure, in a few words."""
    text = stderr.lower()
    if "host key verification failed" in text or "remote host identification has changed" \
            in text:
        return ("host key verification failed: the device's host key is not the one in "
                "known_hosts (refused; check it, then fix known_hosts yourself)")
    if "could not resolve hostname" in text or "name or service not known" in text:
        return "unknown host"
    if "permission denied" in text or "too many authentication failures" in text:
        return "authentication refused (no usable key: ssh-agent, ~/.ssh/config's IdentityFile)"
    if "connection refused" in text or "no route to host" in text or "timed out" in text \
            or "network is unreachable" in text:
        return "host unreachable"
    if "connection closed" in text or "closed by remote host" in text or "broken pipe" in text \
            or "reset by peer" in text or "timeout, server" in text:
        return "the connection dropped"
    return f"ssh failed: {last_line(stderr.encode()) or 'exit status 255'}"


def last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line.removeprefix("edgecnn: error: ")


def _short(words: list[str]) -> str:
    text = " ".join(words)
    return text if len(text) < 60 else text[:57] + "..."
