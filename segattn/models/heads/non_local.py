"""Non-local head (Wang et al., CVPR 2018), in mmsegmentation's NLHead arrangement.

3x3 conv to 512 -> embedded-Gaussian non-local block (reduction 2) -> 3x3 conv
-> concat with the input -> 3x3 bottleneck -> dropout 0.1 -> 1x1 classifier:
the FCN frame the RCCA head uses too, so the two attention forms compare
directly. ``block_norm`` puts a norm after the block's output conv, as
mmsegmentation's ``NonLocal2d`` does.
"""
from functools import partial

import torch
from torch import nn

from ..attention.non_local import NonLocalBlock
from ..init import small_normal
from ..registry import HEADS
from .fcn import FCNHead


@HEADS.register("nonlocal")
class NonLocalHead(FCNHead):
    title = "Non-local"
    family = "self-attention"
    legacy_keys = {"conv_in.": "convs.0.", "conv_out.": "convs.1.", "nl_block.": "attention.",
                   "bottleneck.": "conv_cat."}
    legacy_options = {"reduction": "reduction", "use_scale": "use_scale"}
    mmseg_keys = {**FCNHead.mmseg_keys, "nl_block.": "attention."}
    mmseg_type = "NLHead"
    mmseg_folder = "nonlocal_net"
    map_kinds = ("non_local",)

    def __init__(self, in_channels: int, channels: int, num_classes: int, reduction: int = 2,
                 use_scale: bool = True, block_norm: bool = False, dropout: float = 0.1, norm=nn.BatchNorm2d):
        block = partial(NonLocalBlock, reduction=reduction, use_scale=use_scale, norm=norm if block_norm else None)
        super().__init__(in_channels, channels, num_classes, num_convs=2, concat_input=True, dropout=dropout,
                         norm=norm, attention=block)

    def mmseg_init(self):
        """mmcv's ``NonLocal2d.init_weights``: theta, phi, g N(0, 0.01) (its output conv-norm is a ConvModule, drawn
        by init_heads_like_mmseg; its norm, or without one the conv itself, starts at 0 as ours does)."""
        block = self.attention
        for conv in (block.theta, block.phi, block.g):
            small_normal(conv)

    def attention_maps(self, x: torch.Tensor) -> dict:
        return {"non_local": self.attention.attention(self.convs[0](x))}
