"""FCN head (Long et al., CVPR 2015), in the form mmsegmentation's dilated baselines use.

``num_convs`` 3x3 conv-norm-ReLU layers; with ``concat_input`` their output is
concatenated with the input and fused by one more 3x3 conv; then the
classifier. The default (2 convs, concat) is the FCN baseline of the CCNet and
DANet comparisons; ``num_convs=1, concat_input=False`` with 256 channels is the
auxiliary head on layer3 (1024 -> 256 -> classes, dropout 0.1).

Attention heads that share this frame (CCNet, Non-local; mmsegmentation's
``CCHead`` and ``NLHead`` do the same) subclass it and put their block between
the first two convs: they pass ``attention``, a ``channels -> block`` factory
(a class, or a ``functools.partial`` carrying the head's block options), and,
where the block is applied more than once, override :meth:`attend`.
"""
from typing import Callable

import torch
from torch import nn

from ..layers import ConvNormReLU
from ..registry import HEADS
from .base import DecodeHead


@HEADS.register("fcn")
class FCNHead(DecodeHead):
    title = "FCN"
    mmseg_type = "FCNHead"
    starts_as_identity = ("attention",)  # a subclass's block (None in plain FCN)

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 2,
                 concat_input: bool = True, dropout: float = 0.1, norm=nn.BatchNorm2d,
                 attention: Callable[[int], nn.Module] = None):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        if num_convs < 1:
            raise ValueError(f"num_convs must be >= 1, got {num_convs}")
        first = ConvNormReLU(in_channels, channels, norm=norm)
        # the block after the first conv, built here so parameters initialise in forward order
        self.attention = attention(channels) if attention is not None else None
        rest = [ConvNormReLU(channels, channels, norm=norm) for _ in range(num_convs - 1)]
        self.convs = nn.Sequential(first, *rest)
        self.conv_cat = ConvNormReLU(in_channels + channels, channels, norm=norm) if concat_input else None

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The conv -> attention -> conv branch, before the concat."""
        out = self.convs[0](x)
        if self.attention is not None:
            out = self.attend(out)
        return self.convs[1:](out)

    def forward(self, x: torch.Tensor) -> dict:
        out = self.context(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return {"main": self.cls_seg(out)}


def AuxFCNHead(in_channels: int, num_classes: int, channels: int = 256, dropout: float = 0.1,
               norm=nn.BatchNorm2d) -> FCNHead:
    """Auxiliary head on layer3, as in PSPNet / CCNet / DANet training recipes."""
    return FCNHead(in_channels, channels, num_classes, num_convs=1, concat_input=False, dropout=dropout,
                   norm=norm)
