"""Images to a model-ready batch, with Pillow and numpy only: the project's one preprocessing.

    pre = Preprocess.from_metadata(meta)           # or Preprocess(224, mean, std, policy=...)
    batch = pre(["cat.jpg", pil_image, hwc_uint8])  # (3, C, H, W) float32
    pixels = pre.pixels("cat.jpg")                  # (H, W, C) uint8, before normalization

Every consumer goes through this file: the runtime (predict, deploy/app.py, runtime.load),
training's evaluation (edgecnn.data.view feeds the model these pixels), `edgecnn eval`,
export's calibration and accuracy guard, and bench's accuracy. The steps and their order
are the artifact's `PreprocessPolicy` (edgecnn.metadata): decode (JPEG draft mode down to
at least twice the size the model needs, for JPEGs over 24 MP), EXIF orientation, the alpha rule, channels,
resize (squash, or the shorter side and a centre crop), then (pixel / 255 - mean) / std.

Images may be file paths, Pillow images or uint8 numpy arrays (H, W) / (H, W, C).
Anything else, or a file Pillow cannot decode, is one EdgeCNNError naming the image.
Pillow's own warnings (decompression-bomb size, corrupt EXIF) are silenced for Pillow's
modules, process-wide, the first time an image is decoded: they would print once per
process with no file name, and this module applies its own size limit with one.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from edgecnn.errors import EdgeCNNError
from edgecnn.metadata import SQUASH, PreprocessPolicy

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from edgecnn.metadata import ArtifactMetadata

ImageLike = Union[str, "os.PathLike[str]", "Image.Image", np.ndarray]
LAYOUTS = ("NCHW", "NHWC")
MAX_PIXELS = 64_000_000  # refuse larger decoded images (a bomb, or not a photo)
# JPEGs over DRAFT_ABOVE pixels (a 108 MP phone photo) are decoded at 1/2..1/8 scale, to at
# least DRAFT_FACTOR times the size the model needs; smaller ones at full size, so that a
# file and the array of its full decode give the same pixels.
DRAFT_ABOVE = 24_000_000
DRAFT_FACTOR = 2
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit gray (PNG, TIFF)


@dataclass(frozen=True)
class Preprocess:
    resolution: int | tuple[int, int]  # square side, or (height, width)
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]
    layout: str = "NCHW"
    policy: PreprocessPolicy = field(default=SQUASH)

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
        if not isinstance(self.policy, PreprocessPolicy):
            raise EdgeCNNError(f"policy must be a PreprocessPolicy, got "
                               f"{type(self.policy).__name__}")

    @classmethod
    def from_metadata(cls, meta: ArtifactMetadata) -> Preprocess:
        return cls(resolution=meta.resolution, mean=meta.mean, std=meta.std, layout=meta.layout,
                   policy=meta.preprocess)  # type: ignore[arg-type]

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

    def image(self, image: ImageLike) -> np.ndarray:
        """One image -> (C, H, W) float32 (or (H, W, C) for NHWC)."""
        return self.normalize(self.pixels(image))

    def pixels(self, image: ImageLike) -> np.ndarray:
        """One image -> (H, W, C) uint8: the policy's steps up to, not including, the
        normalization (what training's evaluation stores)."""
        h, w = self.resolution  # type: ignore[misc]
        need = math.ceil(DRAFT_FACTOR * max(h, w) / self.policy.crop)
        pil = decode(image, self.policy, gray=self.in_chans == 1, draft=need)
        x = np.asarray(fit(pil, (w, h), self.policy), dtype=np.uint8)
        return x[..., None] if x.ndim == 2 else x

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, C) uint8 -> float32 in the layout: x * (1 / (255 std)) - mean / std, the
        same float32 multiply-add as data.transforms.normalize on the torch side."""
        scale, shift = norm_constants(self.mean, self.std)
        x = pixels.astype(np.float32) * scale - shift
        return np.ascontiguousarray(x.transpose(2, 0, 1) if self.layout == "NCHW" else x)

    def nchw_uint8(self, images: np.ndarray) -> np.ndarray:
        """A batch from a data set's (N, C, H, W) uint8 array (C = 1 or 3), image by image
        as files of those pixels would be."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise EdgeCNNError(f"expected (N, 1|3, H, W) uint8 images, got {images.dtype} "
                               f"{images.shape}")
        hwc = images.transpose(0, 2, 3, 1)
        return self([im[..., 0] if im.shape[-1] == 1 else im for im in hwc])


def norm_constants(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 (scale, shift) per channel: normalized = pixel * scale - shift."""
    scale = np.array([1 / (255 * s) for s in std], dtype=np.float32)
    shift = np.array([m / s for m, s in zip(mean, std)], dtype=np.float32)
    return scale, shift


def decode(image: ImageLike, policy: PreprocessPolicy, *, gray: bool,
           draft: int | None = None, draft_above: int = DRAFT_ABOVE) -> Image.Image:
    """Steps 1-3 of the policy: a Pillow "L" (gray) or "RGB" image, any size. `draft`:
    a JPEG of more than `draft_above` pixels is decoded at 1/2, 1/4 or 1/8 scale while both
    sides stay >= draft (training's stored squares pass 0: always)."""
    from PIL import Image

    _quiet_pillow()
    if isinstance(image, (str, os.PathLike)):
        return _open(Path(image), policy, gray, draft, draft_above)
    if isinstance(image, Image.Image):
        _draft(image, draft, draft_above)
        return _convert(image, policy, gray, "the image")
    if isinstance(image, np.ndarray):
        return _convert(_from_array(image), policy, gray, "the array")
    raise EdgeCNNError(f"an image must be a file path, a Pillow image or a uint8 numpy array, "
                       f"got {type(image).__name__}")


def fit(pil: Image.Image, size: tuple[int, int], policy: PreprocessPolicy) -> Image.Image:
    """Step 4-5: resize to `size` (width, height) by the policy, in one resampling."""
    from PIL import Image

    w, h = size
    iw, ih = pil.size
    box: tuple[float, float, float, float] = (0.0, 0.0, float(iw), float(ih))
    if policy.resize == "shorter":  # the centred region of the target's aspect, then crop
        aspect = w / h
        rw, rh = (ih * aspect, float(ih)) if iw / ih > aspect else (float(iw), iw / aspect)
        rw, rh = rw * policy.crop, rh * policy.crop
        box = ((iw - rw) / 2, (ih - rh) / 2, (iw + rw) / 2, (ih + rh) / 2)
    if pil.size == (w, h) and box == (0.0, 0.0, float(iw), float(ih)):
        return pil
    resample = getattr(Image.Resampling, policy.interpolation.upper())
    return pil.resize((w, h), resample, box=box)  # Pillow's filters widen when shrinking


def _open(path: Path, policy: PreprocessPolicy, gray: bool, draft: int | None,
          draft_above: int) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            _draft(im, draft, draft_above)
            if im.width * im.height > MAX_PIXELS:
                raise EdgeCNNError(f"{path}: {im.width}x{im.height} pixels is too large an image "
                                   f"(limit {MAX_PIXELS // 1_000_000} MP)")
            return _convert(im, policy, gray, str(path))
    except FileNotFoundError:
        raise EdgeCNNError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise EdgeCNNError(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise EdgeCNNError(f"{path}: not an image Pillow can read") from None
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise EdgeCNNError(f"{path}: refused as a decompression bomb (declares over {limit:,} "
                           f"pixels)") from None
    except OSError as exc:  # truncated or corrupt data, unreadable file
        raise EdgeCNNError(f"{path}: cannot read image: {exc}") from None
    except EdgeCNNError:
        raise
    # Pillow's plugins raise a zoo of types on malformed files (SyntaxError, struct.error,
    # IndexError, ...): each is this one file's problem, in one line.
    except Exception as exc:  # noqa: BLE001
        raise EdgeCNNError(f"{path}: cannot decode image ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None


def _draft(im: Image.Image, draft: int | None, above: int) -> None:
    """A large JPEG not yet decoded: decode it at reduced scale, both sides >= `draft`."""
    if draft is not None and im.format == "JPEG" and im.width * im.height > above \
            and getattr(im, "tile", None):
        im.draft(None, (draft, draft))


def _convert(im: Image.Image, policy: PreprocessPolicy, gray: bool, name: str) -> Image.Image:
    from PIL import Image, ImageOps

    if im.width < 1 or im.height < 1:
        raise EdgeCNNError(f"{name} is empty ({im.width}x{im.height})")
    mode = "L" if gray else "RGB"
    try:
        if policy.exif:
            im = ImageOps.exif_transpose(im)  # a copy when rotated; loads the pixels
        has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
        if im.mode in _WIDE_GRAY:  # 16-bit gray: scaled to 8 bits, not clipped at 255
            im = Image.fromarray(_to_8bit(np.asarray(im)))
        elif im.mode == "F":
            im = Image.fromarray(np.clip(np.rint(np.asarray(im)), 0, 255).astype(np.uint8))
        elif has_alpha and policy.alpha != "drop":
            rgba = im.convert("RGBA")
            colour = (0, 0, 0, 255) if policy.alpha == "black" else (255, 255, 255, 255)
            im = Image.new("RGBA", rgba.size, colour)
            im.alpha_composite(rgba)
        elif im.mode == "P" and has_alpha:  # through RGBA, or Pillow warns; alpha dropped
            im = im.convert("RGBA")
        im.load()
        return im.convert(mode)
    except (OSError, ValueError, SyntaxError) as exc:
        raise EdgeCNNError(f"{name}: cannot decode image: {exc}") from None


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit gray (0..65535) -> uint8 by v * 255 / 65535, rounded half up."""
    v = np.clip(values.astype(np.int64), 0, 65535)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


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


_QUIET = False


def _quiet_pillow() -> None:
    """Ignore warnings raised inside Pillow (see the module doc); once per process.
    Not `catch_warnings` per call: that swaps global state and is not thread-safe."""
    global _QUIET
    if not _QUIET:
        from PIL import Image

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        _QUIET = True


def _floats(name: str, values: Any) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise EdgeCNNError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if any(not math.isfinite(v) for v in out):
        raise EdgeCNNError(f"{name} values must be finite")
    return out
