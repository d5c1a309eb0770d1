"""Atomic file writes: a temporary file in the same directory, fsync, then rename.

A reader (or a resumed run) sees the old file or the new one, never half of one; a write
that fails or is killed leaves at most a hidden `.NAME.*.tmp` file, never a truncated NAME.
Torch-free, so the runtime can use it too. Every file edgecnn writes goes through here
(checkpoints, training runs, reports, benchmark results, the TensorRT engine cache), except
an export's files: export/artifact.py writes them into a temporary directory and renames
the whole directory into place. `file_sha256` is the project's one file hash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from edgecnn.errors import EdgeCNNError


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """`with atomic_file(p) as f: f.write(...)`: p appears complete at the end, or not at all.

    A file-system error (full disk, read-only or missing directory) is one EdgeCNNError
    naming the file; the temporary file is removed first.
    """
    path = Path(path)
    with write_errors(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            # mkstemp makes 0600 files; give the usual permissions (0666 less the umask)
            os.fchmod(fd, 0o666 & ~umask())
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def write_errors(path: str | Path) -> Iterator[None]:
    """An OSError while writing `path` becomes one EdgeCNNError naming it."""
    try:
        yield
    except OSError as exc:
        raise EdgeCNNError(f"cannot write {path}: {exc.strerror or exc}") from None


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write `data` (text is UTF-8) atomically; returns the path."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends, then reach the handler that was in
    place (KeyboardInterrupt): for steps that must not stop halfway, such as two renames
    that swap a directory into place. Outside the main thread, signals are not Python's to
    hold there, and the block runs as it is."""
    held: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda signum, frame: held.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if held:
        signal.raise_signal(held[0])


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks: the project's one hash of files
    (checkpoints, ONNX files, artifacts)."""
    import hashlib  # here, not at the top: it loads OpenSSL (~3.5 MB resident) for nothing

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask
