"""Batch transforms without torchvision: uint8 (B, C, H, W) in, a model-ready float batch out.

    transform = BatchTransform.for_dataset(ds, resolution=32, in_chans=3, train=True)
    x = transform(images, generator=g)  # (B, 3, 32, 32) float32, normalised

Everything works on whole batches with tensor ops, on whatever device the batch lives on;
the random parameters are drawn on the CPU from the given `torch.Generator`, so that a
seeded run draws the same crops and flips on every device.

Order: fewer channels first (3 -> 1 by luminance), then resize and augmentation, then more
channels (1 -> 3 by repetition, on the smaller image), then normalisation. Pixels stay in
0..255 until the normalisation, which folds the 1/255 into mean and std.

Augmentation follows the data set:
  pad_crop      resize to the resolution, pad by resolution/8 (CIFAR's 4 px at 32) and crop
                back at a random offset; a horizontal flip where the data set allows it
  resized_crop  Inception's random resized crop (area 8%..100%, aspect 3/4..4/3) and a flip
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from edgecnn.data.datasets import LUMA, Augment, ImageDataset, convert_stats
from edgecnn.errors import EdgeCNNError



@dataclass(frozen=True, kw_only=True)
class TransformConfig:
    """What the model wants and how much to augment."""

    resolution: int  # output side, the model's input resolution
    in_chans: int = 3  # the model's input channels
    train: bool = False  # augment (random crops and flips) or not
    pad_fraction: float = 0.125  # pad_crop: padding as a share of the resolution
    scale: tuple[float, float] = (0.08, 1.0)  # resized_crop: range of the crop's area share
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # resized_crop: range of its aspect ratio
    hflip: float = 0.5  # flip probability, where the data set allows flips


class BatchTransform:
    """Callable: uint8 (B, C, H, W) -> float32 (B, in_chans, resolution, resolution)."""

    def __init__(
        self,
        config: TransformConfig,
        *,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: Augment = "pad_crop",
        allow_hflip: bool = False,
    ) -> None:
        if config.resolution < 1 or config.in_chans < 1:
            raise EdgeCNNError(f"resolution and in_chans must be positive, got {config}")
        if len(mean) != len(std) or min(std) <= 0:
            raise EdgeCNNError(f"mean {mean} and std {std} do not describe the same channels")
        if augment not in ("pad_crop", "resized_crop"):
            raise EdgeCNNError(f"unknown augmentation {augment!r}")
        (lo, hi), (r_lo, r_hi) = config.scale, config.ratio
        if not (0 < lo <= hi <= 1 and 0 < r_lo <= r_hi and 0 <= config.hflip <= 1
                and 0 <= config.pad_fraction < 1):
            raise EdgeCNNError(f"augmentation options out of range: scale {config.scale}, ratio "
                               f"{config.ratio}, hflip {config.hflip}, pad_fraction "
                               f"{config.pad_fraction}")
        self.config = config
        self.augment = augment
        self.allow_hflip = allow_hflip
        self.source_chans = len(mean)
        # The normalisation the model sees, in its own channels: what a checkpoint records.
        self.mean, self.std = convert_stats(mean, std, config.in_chans)

    @classmethod
    def for_dataset(
        cls, dataset: ImageDataset, *, resolution: int, in_chans: int = 3, train: bool = False,
        **options: float | tuple[float, float],
    ) -> BatchTransform:
        """The transform for `dataset` (its mean/std, flip rule and augmentation policy)."""
        config = TransformConfig(resolution=resolution, in_chans=in_chans, train=train,
                                 **options)  # type: ignore[arg-type]
        return cls(config, mean=dataset.mean, std=dataset.std, augment=dataset.augment,
                   allow_hflip=dataset.allow_hflip)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Transform a batch; `generator` (a CPU one) seeds the augmentation."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise EdgeCNNError(f"expected a uint8 (B, C, H, W) batch, got {images.dtype} "
                               f"{tuple(images.shape)}")
        if images.shape[1] != self.source_chans:
            raise EdgeCNNError(f"expected {self.source_chans}-channel images, got "
                               f"{images.shape[1]}")
        cfg = self.config
        x = images.float()  # (B, C, H, W) in 0..255
        if cfg.in_chans < x.shape[1]:
            x = convert_channels(x, cfg.in_chans)
        if cfg.train and self.augment == "resized_crop":
            x = self._resized_crop(x, generator)
        else:
            x = resize(x, cfg.resolution)
            if cfg.train:
                x = self._pad_crop(x, generator)
        if cfg.in_chans > x.shape[1]:
            x = convert_channels(x, cfg.in_chans)
        return normalize(x, self.mean, self.std)

    def _flips(self, batch: int, generator: torch.Generator | None) -> Tensor:
        """(B,) bool on the CPU: which samples to mirror."""
        draw = torch.rand(batch, generator=generator)
        return draw < (self.config.hflip if self.allow_hflip else 0.0)

    def _pad_crop(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Zero-pad by p and crop back at per-sample offsets, flips folded into the gather."""
        b, _, h, w = x.shape
        pad = round(self.config.resolution * self.config.pad_fraction)
        flip = self._flips(b, generator)
        offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)  # (dy, dx) per sample
        if pad == 0 and not flip.any():
            return x
        padded = F.pad(x, (pad, pad, pad, pad))  # (B, C, H + 2p, W + 2p), black border
        rows = torch.arange(h)[None, :] + offsets[0][:, None]  # (B, H)
        cols = torch.arange(w).expand(b, w)
        cols = torch.where(flip[:, None], w - 1 - cols, cols) + offsets[1][:, None]  # (B, W)
        rows, cols = rows.to(x.device), cols.to(x.device)
        c, wp = x.shape[1], padded.shape[-1]
        # Two gathers, rows then columns: twice as fast as one 4-d advanced index on a CPU.
        out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, wp))  # (B, C, H, W + 2p)
        return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # (B, C, H, W)

    def _resized_crop(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Random resized crop as one affine grid sampled bilinearly for the whole batch."""
        res = self.config.resolution
        b, _, h, w = x.shape
        if min(h, w) > 2 * res:  # bilinear sampling aliases when it shrinks by more than 2x
            f = 2 * res / min(h, w)
            x = resize(x, (round(h * f), round(w * f)))
            h, w = x.shape[-2:]
        lo, hi = self.config.scale
        area = (lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)) * h * w
        log_lo, log_hi = math.log(self.config.ratio[0]), math.log(self.config.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, generator=generator,
                                                                  dtype=torch.float64))
        # Clamped to the image rather than redrawn (torchvision retries 10 times, then crops
        # the centre): nearly the same distribution, without a data-dependent loop.
        cw = torch.sqrt(area * aspect).clamp(1, w)
        ch = torch.sqrt(area / aspect).clamp(1, h)
        x0 = torch.rand(b, generator=generator, dtype=torch.float64) * (w - cw)
        y0 = torch.rand(b, generator=generator, dtype=torch.float64) * (h - ch)
        sx = torch.where(self._flips(b, generator), -cw / w, cw / w)  # a flip mirrors x
        theta = torch.zeros(b, 2, 3, dtype=torch.float64)
        # Output coordinates in [-1, 1] land on the crop box (align_corners=False convention).
        theta[:, 0, 0], theta[:, 0, 2] = sx, (2 * x0 + cw) / w - 1
        theta[:, 1, 1], theta[:, 1, 2] = ch / h, (2 * y0 + ch) / h - 1
        grid = F.affine_grid(theta.to(x.device, x.dtype), [b, x.shape[1], res, res],
                             align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear resize of a float batch, antialiased when it shrinks (values stay in range)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def convert_channels(x: Tensor, in_chans: int) -> Tensor:
    """(B, C, H, W) -> (B, in_chans, H, W): gray repeated, or RGB to luminance."""
    c = x.shape[1]
    if c == in_chans:
        return x
    if c == 1:
        return x.expand(-1, in_chans, -1, -1)
    if c == 3 and in_chans == 1:
        return torch.einsum("bchw,c->bhw", x, torch.tensor(LUMA, device=x.device, dtype=x.dtype))[
            :, None]
    raise EdgeCNNError(f"cannot feed {c}-channel images to a model with {in_chans} input channels")


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """(B, C, H, W) pixels in 0..255 -> x * (1 / (255 std)) - mean / std: the float32
    constants and multiply-add of the runtime's Preprocess.normalize, to the bit on a CPU."""
    scale = torch.tensor([1 / (255 * s) for s in std], dtype=torch.float32, device=x.device)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32,
                         device=x.device)
    return (x.float() * scale.view(1, -1, 1, 1) - shift.view(1, -1, 1, 1)).contiguous()
