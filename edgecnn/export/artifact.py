"""The artifact directory, written atomically: a temporary sibling renamed at the end.

    with ArtifactDir(Path("exports/mobilenet-a0.5-r224"), force=False) as out:
        out.write_onnx("model.onnx", proto)
        out.write_json("export.json", report)
        out.commit()          # rename; without it (an error, Ctrl-C) nothing is left behind

- The destination is checked before any work (exists and no --force: one-line error) and
  again at the rename: rename(2) refuses a non-empty directory, so of two exports racing to
  one directory exactly one wins and the other fails clearly; the directory is always one
  complete export, never a mix.
- --force replaces only an earlier export (a directory holding export.json) or an empty one,
  never some other folder the user pointed -o at by mistake.
- A SIGKILLed export leaves a hidden `.NAME.tmp-PID-*` sibling; the next export to the same
  place removes those whose process is gone.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import onnx

from edgecnn.errors import EdgeCNNError
from edgecnn.export.onnx_io import save_onnx
from edgecnn.fileio import file_sha256, signals_held, umask, write_errors

MANIFEST = "export.json"


class ArtifactDir:
    def __init__(self, dest: Path, *, force: bool = False) -> None:
        self.dest = Path(dest).expanduser().absolute()
        self.force = force
        check_destination(self.dest, force)
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(self.dest)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.tmp-{os.getpid()}-",
                                             dir=self.dest.parent))
            os.chmod(self.tmp, 0o777 & ~umask())  # mkdtemp's 0700 is for secrets, not exports
        except OSError as exc:
            raise EdgeCNNError(f"cannot write in {self.dest.parent}: {exc.strerror}") from None
        self.files: dict[str, Path] = {}
        self.committed = False

    def __enter__(self) -> ArtifactDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def write_onnx(self, name: str, proto: onnx.ModelProto) -> Path:
        with write_errors(self.dest / name):
            return self._keep(name, save_onnx(proto, self.tmp / name))

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.tmp / name
        with write_errors(self.dest / name):
            path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n",
                            encoding="utf-8")
        return self._keep(name, path)

    def _keep(self, name: str, path: Path) -> Path:
        self.files[name] = path
        return path

    def commit(self) -> Path:
        """fsync the files, then move the directory into place (see the module doc)."""
        for name, path in self.files.items():
            with write_errors(self.dest / name), open(path, "rb") as f:
                os.fsync(f.fileno())
        old = None
        # a Ctrl-C between the renames would leave no artifact and the earlier one hidden
        with signals_held():
            if self.dest.exists():
                check_destination(self.dest, self.force)  # written by someone meanwhile?
                old = self.dest.parent / f".{self.dest.name}.old-{os.getpid()}"
                os.rename(self.dest, old)
            try:
                os.rename(self.tmp, self.dest)
            except OSError as exc:
                if old is not None:  # put the previous export back
                    os.rename(old, self.dest)
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise EdgeCNNError(f"{self.dest} was written by another export meanwhile;"
                                       " use --force to replace it") from None
                raise EdgeCNNError(f"cannot move the export into {self.dest}: "
                                   f"{exc.strerror}") from None
            self.committed = True
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(self.dest.parent)
        return self.dest


def check_destination(dest: Path, force: bool) -> None:
    """An existing destination is an error without --force, and never replaced unless it is
    an earlier export (or empty)."""
    dest = Path(dest).expanduser().absolute()
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir():
            raise EdgeCNNError(f"{dest} exists and is not a directory")
        if not force:
            raise EdgeCNNError(f"{dest} already exists; use --force to replace it")
        if any(dest.iterdir()) and not (dest / MANIFEST).is_file():
            raise EdgeCNNError(f"{dest} is not an edgecnn export (no {MANIFEST}); "
                               "refusing to replace it, even with --force")


def _remove_stale(dest: Path) -> None:
    """Temporary siblings of killed exports (their PID is gone)."""
    for path in dest.parent.glob(f".{dest.name}.tmp-*"):
        try:
            pid = int(path.name.removeprefix(f".{dest.name}.tmp-").split("-")[0])
        except ValueError:
            continue
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# gzip runs at ~20 MB/s here (zstd -10 at ~250 MB/s): for VGG's 0.5 GB file it took 27 s of a
# 60 s export. Above this size, gzip_bytes is None and zstd alone gives the compressed figure.
GZIP_MAX_BYTES = 64 * 1024 * 1024


def file_sizes(path: Path) -> dict[str, Any]:
    """Raw and compressed sizes: what a device download or a firmware image costs.
    zstandard is a dependency of the torch extra (export runs only there)."""
    import zstandard

    data = path.read_bytes()
    gz = len(gzip.compress(data, 9)) if len(data) <= GZIP_MAX_BYTES else None
    return {"bytes": len(data), "gzip_bytes": gz,
            # every core: the same bytes whatever their number (zstd's multi-threaded frames)
            "zstd_bytes": len(zstandard.ZstdCompressor(level=10, threads=-1).compress(data)),
            "sha256": file_sha256(path)}
