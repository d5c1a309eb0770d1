"""Models defined outside the zoo, imported by path as a user's would be
(`edgecnn train tests.usermodels:small_cnn ...` with the repository root on PYTHONPATH)."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks, global pooling and a linear head: a typical user model."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * width), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.head(self.pool(self.features(x)).flatten(1))


def small_cnn(num_classes: int, in_chans: int = 3) -> nn.Module:
    return SmallCNN(num_classes, in_chans)


def gray_cnn(num_classes: int) -> nn.Module:
    """No in_chans argument: one input channel, fixed."""
    return SmallCNN(num_classes, in_chans=1, width=16)


def not_a_module(num_classes: int) -> str:
    return "a string"


def scaled_cnn(num_classes: int, in_chans: int = 3, width_mult: float = 1.0) -> nn.Module:
    """A width multiplier by torchvision's name (`edgecnn fit` on a user model)."""
    return SmallCNN(num_classes, in_chans=in_chans, width=max(4, round(16 * width_mult)))
