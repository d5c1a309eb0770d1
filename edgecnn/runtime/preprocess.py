"""Images to a model-ready batch, with Pillow and numpy only.

    pre = Preprocess.from_metadata(meta)           # or Preprocess(224, mean, std)
    batch = pre(["cat.jpg", pil_image, hwc_uint8])  # (3, C, H, W) float32

The steps follow the project's evaluation transform (edgecnn/data/transforms.py), so that an
artifact sees at deployment what it saw in validation: channels converted (RGB -> luminance
with ITU-R BT.601 weights, what Pillow's "L" uses; gray repeated to RGB), the whole image
resized to the model's side with antialiased bilinear filtering (`crop=1.0`; a centre crop
of that share of the shorter side first when `crop < 1`, ImageNet's 0.875), then
(pixel / 255 - mean) / std per channel, laid out NCHW (or NHWC).

Images may be file paths, Pillow images or uint8 numpy arrays (H, W) / (H, W, C).
Anything else, or a file Pillow cannot decode, is one EdgeCNNError naming the image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from edgecnn.errors import EdgeCNNError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from edgecnn.metadata import ArtifactMetadata

ImageLike = Union[str, "os.PathLike[str]", "Image.Image", np.ndarray]
LAYOUTS = ("NCHW", "NHWC")
MAX_PIXELS = 64_000_000  # refuse larger images (a decompression bomb, or not a photo)


@dataclass(frozen=True)
class Preprocess:
    resolution: int | tuple[int, int]  # square side, or (height, width)
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    layout: str = "NCHW"
    crop: float = 1.0  # share of the shorter side kept by a centre crop; 1.0 = whole image

    def __post_init__(self) -> None:
        res = self.resolution
        size = (res, res) if isinstance(res, int) else tuple(res)
        if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                 for v in size):
            raise EdgeCNNError(f"resolution must be a positive int or (height, width), got {res!r}")
        object.__setattr__(self, "resolution", size)
        mean, std = _floats("mean", self.mean), _floats("std", self.std)
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise EdgeCNNError(f"mean and std need 1 or 3 values each (one per channel), got "
                               f"{len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise EdgeCNNError("std values must be positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.layout not in LAYOUTS:
            raise EdgeCNNError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)) or not (
                0 < self.crop <= 1):
            raise EdgeCNNError(f"crop must be in (0, 1], got {self.crop!r}")

    @classmethod
    def from_metadata(cls, meta: ArtifactMetadata) -> Preprocess:
        return cls(resolution=meta.resolution, mean=meta.mean, std=meta.std, layout=meta.layout)

    @property
    def in_chans(self) -> int:
        return len(self.mean)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image as the model takes it, without the batch dimension."""
        h, w = self.resolution  # type: ignore[misc]
        return (self.in_chans, h, w) if self.layout == "NCHW" else (h, w, self.in_chans)

    def __call__(self, images: Sequence[ImageLike]) -> np.ndarray:
        """A batch (N, C, H, W) float32 (or NHWC) from N images."""
        if not len(images):
            raise EdgeCNNError("no images to preprocess")
        return np.stack([self.image(im) for im in images])

    def nchw_uint8(self, images: np.ndarray) -> np.ndarray:
        """A batch from a data set's (N, C, H, W) uint8 array (C = 1 or 3), image by image
        as files would be: the same Pillow resize and rounding a device app gets."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise EdgeCNNError(f"expected (N, 1|3, H, W) uint8 images, got {images.dtype} "
                               f"{images.shape}")
        hwc = images.transpose(0, 2, 3, 1)
        return self([im[..., 0] if im.shape[-1] == 1 else im for im in hwc])

    def image(self, image: ImageLike) -> np.ndarray:
        """One image -> (C, H, W) float32 (or (H, W, C) for NHWC)."""
        pil = to_pil(image, gray=self.in_chans == 1)
        if self.crop < 1:
            side = max(1, round(min(pil.size) * self.crop))
            left, top = (pil.width - side) // 2, (pil.height - side) // 2
            pil = pil.crop((left, top, left + side, top + side))
        h, w = self.resolution  # type: ignore[misc]
        if pil.size != (w, h):
            from PIL import Image

            pil = pil.resize((w, h), Image.Resampling.BILINEAR)  # antialiased when shrinking
        x = np.asarray(pil, dtype=np.float32)
        x = x[..., None] if x.ndim == 2 else x  # (H, W, C) in 0..255
        # (x / 255 - mean) / std as one multiply-add per pixel
        scale = np.array([1 / (255 * s) for s in self.std], dtype=np.float32)
        shift = np.array([m / s for m, s in zip(self.mean, self.std)], dtype=np.float32)
        x = x * scale - shift
        return np.ascontiguousarray(x.transpose(2, 0, 1) if self.layout == "NCHW" else x)


def to_pil(image: ImageLike, gray: bool) -> Image.Image:
    """Open/convert one image to Pillow "RGB" (or "L" when `gray`)."""
    from PIL import Image

    mode = "L" if gray else "RGB"
    if isinstance(image, (str, os.PathLike)):
        return _open(Path(image), mode)
    if isinstance(image, Image.Image):
        return _convert(image, mode, "the image")
    if isinstance(image, np.ndarray):
        return _convert(_from_array(image), mode, "the array")
    raise EdgeCNNError(f"an image must be a file path, a Pillow image or a uint8 numpy array, "
                       f"got {type(image).__name__}")


def _open(path: Path, mode: str) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise EdgeCNNError(f"{path}: {im.width}x{im.height} pixels is too large an image")
            return _convert(im, mode, str(path))
    except FileNotFoundError:
        raise EdgeCNNError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise EdgeCNNError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise EdgeCNNError(f"{path}: not an image Pillow can read") from None
    except Image.DecompressionBombError:
        raise EdgeCNNError(f"{path}: too large an image (decompression bomb guard)") from None
    except OSError as exc:  # truncated or corrupt data, unreadable file
        raise EdgeCNNError(f"{path}: cannot read image: {exc}") from None


def _convert(im: Image.Image, mode: str, name: str) -> Image.Image:
    from PIL import Image

    if im.width < 1 or im.height < 1:
        raise EdgeCNNError(f"{name} is empty ({im.width}x{im.height})")
    try:
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F") and mode == "RGB":
            im = im.convert("L")  # 16-bit/float gray: through 8-bit gray, not clipped RGB
        elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            # Transparent pixels on white, as a viewer shows them, not on arbitrary RGB.
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            background.alpha_composite(rgba)
            im = background
        im.load()
        return im.convert(mode)
    except (OSError, ValueError) as exc:
        raise EdgeCNNError(f"{name}: cannot decode image: {exc}") from None


def _from_array(array: np.ndarray) -> Image.Image:
    from PIL import Image

    if array.dtype != np.uint8:
        raise EdgeCNNError(f"an image array must be uint8 (H, W) or (H, W, C), got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise EdgeCNNError(f"an image array must be (H, W) or (H, W, 1|3|4) uint8, got shape "
                           f"{array.shape}")
    if array.size == 0:
        raise EdgeCNNError(f"the image array is empty (shape {array.shape})")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise EdgeCNNError(f"the image array is too large ({array.shape[1]}x{array.shape[0]})")
    return Image.fromarray(np.ascontiguousarray(array))  # uint8: L, RGB or RGBA by shape


def _floats(name: str, values: Any) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise EdgeCNNError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if any(not math.isfinite(v) for v in out):
        raise EdgeCNNError(f"{name} values must be finite")
    return out
