"""GoogLeNet (Inception v1), in the BatchNorm form of torchvision's reference.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842), Table 1.

The default is torchvision's `googlenet` to the unit (6,624,904 params, 1.50G MACs at 224):
- BN (eps 1e-3) after every convolution and no local response normalisation (the paper has
  LRN after the first pool and after conv3, and no BN: it predates it);
- the "5x5" branch uses a 3x3 kernel, a known deviation torchvision keeps for its ported
  TensorFlow weights (pytorch/vision#906). `kernel_5x5=5` restores the paper's 5x5
  (7,005,832 params, 1.58G MACs; the ops column of the paper's Table 1 counts 5x5 kernels,
  e.g. 128M for 3a);
- the pool before stage 5 is 2x2/2 (the paper's is 3x3/2; same 7x7 output at 224 px).
Max pools use ceil_mode, as in the paper's Caffe model, so 224 px gives 112-56-28-14-7.

`aux_logits=True` adds the two auxiliary classifiers on 4a and 4d (Section 5; 13,004,888
params, as torchvision's). They only run in training mode, where forward returns
`GoogLeNetOutputs(logits, aux2, aux1)`; in eval mode (and so in every export) forward returns
the logits alone. The paper weights their losses by 0.3 in the total loss.

The network ends in global average pooling, so it runs at any input of at least 47 px: from
there every BatchNorm sees a map of 2x2 or more, so it also trains at batch size 1 and its
statistics mean something. Eval mode alone would run from 15 px (stage 5 at 1x1), where BN
statistics come from a single value per image and calibrating them on a small batch makes
the logits blow up.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from edgecnn.errors import EdgeCNNError
from edgecnn.layers.conv import ConvNormAct
from edgecnn.layers.inception import Inception, InceptionAux, InceptionNorm
from edgecnn.registry import register_model
from edgecnn.layers.init import is_meta


class InceptionRow(NamedTuple):
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int


# Table 1 of the paper: stages 3, 4 and 5, a 3x3/2 max pool between stages 3 and 4 and a
# 2x2/2 one between 4 and 5 (torchvision's; the paper's is 3x3/2).
#               1x1, 3x3red, 3x3, 5x5red, 5x5, pool_proj
_STAGES: tuple[tuple[InceptionRow, ...], ...] = (
    (
        InceptionRow(64, 96, 128, 16, 32, 32),  # 3a -> 256
        InceptionRow(128, 128, 192, 32, 96, 64),  # 3b -> 480
    ),
    (
        InceptionRow(192, 96, 208, 16, 48, 64),  # 4a -> 512
        InceptionRow(160, 112, 224, 24, 64, 64),  # 4b -> 512
        InceptionRow(128, 128, 256, 24, 64, 64),  # 4c -> 512
        InceptionRow(112, 144, 288, 32, 64, 64),  # 4d -> 528
        InceptionRow(256, 160, 320, 32, 128, 128),  # 4e -> 832
    ),
    (
        InceptionRow(256, 160, 320, 32, 128, 128),  # 5a -> 832
        InceptionRow(384, 192, 384, 48, 128, 128),  # 5b -> 1024
    ),
)
_AUX_TAPS = (0, 3)  # auxiliary classifiers read the outputs of 4a and 4d


class GoogLeNetOutputs(NamedTuple):
    """What forward returns in training mode with aux_logits (torchvision's order)."""

    logits: Tensor
    aux2: Tensor  # head on 4d
    aux1: Tensor  # head on 4a


class GoogLeNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        kernel_5x5: int = 3,
    ) -> None:
        super().__init__()
        if not isinstance(aux_logits, bool):
            raise EdgeCNNError(f"googlenet: aux_logits must be True or False, got {aux_logits!r}")
        for label, value in (("dropout", dropout), ("aux_dropout", aux_dropout)):
            if not 0.0 <= value < 1.0:
                raise EdgeCNNError(f"googlenet: {label} must be in [0, 1), got {value!r}")
        if kernel_5x5 not in (3, 5):
            raise EdgeCNNError(f"googlenet: kernel_5x5 must be 3 or 5, got {kernel_5x5!r}")
        self.aux_logits = aux_logits

        def conv(cin: int, cout: int, k: int, s: int = 1) -> ConvNormAct:
            return ConvNormAct(cin, cout, k, s, norm_layer=InceptionNorm)

        self.stem = nn.Sequential(
            conv(in_chans, 64, 7, 2),  # (B, 64, 112, 112)
            nn.MaxPool2d(3, 2, ceil_mode=True),  # (B, 64, 56, 56)
            conv(64, 64, 1),
            conv(64, 192, 3),  # (B, 192, 56, 56)
            nn.MaxPool2d(3, 2, ceil_mode=True),  # (B, 192, 28, 28)
        )
        stages: list[nn.Sequential] = []
        channels = 192
        for rows in _STAGES:
            blocks = []
            for row in rows:
                blocks.append(Inception(channels, *row, kernel_5x5=kernel_5x5))
                channels = blocks[-1].out_channels
            stages.append(nn.Sequential(*blocks))
        self.stage3, self.stage4, self.stage5 = stages  # 28x28, 14x14, 7x7 at 224 px
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.pool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.aux = nn.ModuleList(
            InceptionAux(self.stage4[i].out_channels, num_classes, aux_dropout)
            for i in _AUX_TAPS
        ) if aux_logits else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        x = self.pool3(self.stage3(self.stem(x)))  # (B, 480, 14, 14)
        aux: list[Tensor] = []
        for i, block in enumerate(self.stage4):
            x = block(x)
            if self.aux is not None and self.training and i in _AUX_TAPS:
                aux.append(self.aux[_AUX_TAPS.index(i)](x))
        x = self.stage5(self.pool4(x))  # (B, 1024, 7, 7)
        logits = self.classifier(self.dropout(self.pool(x).flatten(1)))
        if aux:
            return GoogLeNetOutputs(logits, aux2=aux[1], aux1=aux[0])
        return logits


def _init_weights(model: nn.Module) -> None:
    if is_meta(model):  # shapes only (profiling)
        return
    # torchvision's: truncated normal, std 0.01, cut at +-2 std, for convs and linears.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-0.02, b=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model(
    "googlenet",
    family="googlenet",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR (2015), arXiv:1409.4842",
    min_resolution=47,
)
def googlenet(*, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = False,
              dropout: float = 0.4, aux_dropout: float = 0.7,
              kernel_5x5: int = 3) -> GoogLeNet:
    """GoogLeNet / Inception v1 [Szegedy et al., CVPR 2015], torchvision's BN variant.

    6,624,904 params and 1.50G MACs at 224 px. Dropout 0.4 before the classifier and 0.7 in
    the auxiliary heads, as in the paper (torchvision uses 0.2 for the former).
    `aux_logits=True` adds the auxiliary heads (13,004,888 params), `kernel_5x5=5` the
    paper's 5x5 kernels in place of torchvision's 3x3.
    """
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, aux_logits=aux_logits,
                     dropout=dropout, aux_dropout=aux_dropout, kernel_5x5=kernel_5x5)
