"""DNLNet head (Yin et al., ECCV 2020), in mmsegmentation's DNLHead arrangement.

3x3 conv to 512 -> disentangled non-local block (reduction 2, scaled,
temperature 0.05, a norm after its output conv) -> 3x3 conv -> concat with the
input -> 3x3 bottleneck -> dropout 0.1 -> 1x1 classifier: the Non-local head's
frame, with the paper's whitened pairwise term and unary term.
"""
from functools import partial

import torch
from torch import nn

from ..attention.disentangled_non_local import DisentangledNonLocalBlock
from ..registry import HEADS
from .fcn import FCNHead
from .non_local import NonLocalHead


@HEADS.register("dnl")
class DNLHead(FCNHead):
    title = "DNLNet"
    family = "self-attention"
    mmseg_keys = {**FCNHead.mmseg_keys, "dnl_block.": "attention."}
    mmseg_type = "DNLHead"
    mmseg_folder = "dnlnet"
    map_kinds = ("non_local", "context")

    def __init__(self, in_channels: int, channels: int, num_classes: int, reduction: int = 2,
                 use_scale: bool = True, temperature: float = 0.05, block_norm: bool = True, dropout: float = 0.1,
                 norm=nn.BatchNorm2d):
        block = partial(DisentangledNonLocalBlock, reduction=reduction, use_scale=use_scale, temperature=temperature,
                        norm=norm if block_norm else None)
        super().__init__(in_channels, channels, num_classes, num_convs=2, concat_input=True, dropout=dropout,
                         norm=norm, attention=block)

    # mmcv's NonLocal2d.init_weights, which DNLHead's block inherits; its unary conv keeps PyTorch's default
    mmseg_init = NonLocalHead.mmseg_init

    def attention_maps(self, x: torch.Tensor) -> dict:
        features = self.convs[0](x)
        return {"non_local": self.attention.attention(features), "context": self.attention.unary(features)}
