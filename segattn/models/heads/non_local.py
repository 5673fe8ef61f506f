"""Non-local head (Wang et al., CVPR 2018), in mmsegmentation's NLHead arrangement.

3x3 conv to 512 -> embedded-Gaussian non-local block (reduction 2) -> 3x3 conv
-> concat with the input -> 3x3 bottleneck -> dropout 0.1 -> 1x1 classifier:
the same frame as the RCCA head, so the two attention forms compare directly.
"""
import torch
from torch import nn

from ..attention.non_local import NonLocalBlock
from ..layers import ConvNormReLU
from .base import DecodeHead


class NonLocalHead(DecodeHead):
    def __init__(self, in_channels: int, channels: int, num_classes: int, reduction: int = 2,
                 use_scale: bool = True, dropout: float = 0.1, norm=nn.BatchNorm2d, block_norm: bool = False):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        self.conv_in = ConvNormReLU(in_channels, channels, norm=norm)
        self.nl_block = NonLocalBlock(channels, reduction, use_scale, norm=norm if block_norm else None)
        self.conv_out = ConvNormReLU(channels, channels, norm=norm)
        self.bottleneck = ConvNormReLU(in_channels + channels, channels, norm=norm)

    def forward(self, x: torch.Tensor) -> dict:
        out = self.conv_out(self.nl_block(self.conv_in(x)))
        out = self.bottleneck(torch.cat([x, out], dim=1))
        return {"main": self.cls_seg(out)}
