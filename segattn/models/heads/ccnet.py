"""CCNet recurrent criss-cross attention head (Huang et al., ICCV 2019, Sec. 3.1, Fig. 2).

``x (B, 2048, H, W)`` -> 3x3 conv to 512 -> criss-cross attention applied
``recurrence`` times with shared weights (R = 2 in the paper: two loops give
every pixel full-image context) -> 3x3 conv -> concat with ``x`` -> 3x3
bottleneck to 512 -> dropout 0.1 -> 1x1 classifier.
"""
import torch
from torch import nn

from ...ops import CrissCrossAttention
from ..layers import ConvNormReLU
from .base import DecodeHead


class RCCAHead(DecodeHead):
    def __init__(self, in_channels: int, channels: int, num_classes: int, recurrence: int = 2,
                 dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        if recurrence < 1:
            raise ValueError(f"model.recurrence must be >= 1, got {recurrence}")
        self.recurrence = recurrence
        self.conva = ConvNormReLU(in_channels, channels, norm=norm)
        self.cca = CrissCrossAttention(channels)
        self.convb = ConvNormReLU(channels, channels, norm=norm)
        self.bottleneck = ConvNormReLU(in_channels + channels, channels, norm=norm)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The conva -> R x CCA -> convb branch, before the concat."""
        out = self.conva(x)
        for _ in range(self.recurrence):  # one module: the loops share weights
            out = self.cca(out)
        return self.convb(out)

    def forward(self, x: torch.Tensor) -> dict:
        out = self.bottleneck(torch.cat([x, self.context(x)], dim=1))
        return {"main": self.cls_seg(out)}
