"""GCNet head (Cao et al., ICCV-W 2019), in mmsegmentation's GCHead arrangement.

3x3 conv to 512 -> global context block (attention pooling, bottleneck ratio
1/4, add fusion) -> 3x3 conv -> concat with the input -> 3x3 bottleneck ->
dropout 0.1 -> 1x1 classifier: the FCN frame of the CCNet and Non-local heads,
with one attention map per image where Non-local has one per query.
"""
from functools import partial

import torch
from torch import nn

from ..attention.global_context import GlobalContextBlock
from ..registry import HEADS
from .fcn import FCNHead


@HEADS.register("gcnet")
class GCHead(FCNHead):
    title = "GCNet"
    family = "both"
    mmseg_keys = {**FCNHead.mmseg_keys, "gc_block.": "attention."}
    mmseg_type = "GCHead"
    map_kinds = ("context",)

    def __init__(self, in_channels: int, channels: int, num_classes: int, ratio: float = 1 / 4,
                 pooling: str = "att", fusion=("add",), dropout: float = 0.1, norm=nn.BatchNorm2d):
        block = partial(GlobalContextBlock, ratio=ratio, pooling=pooling, fusion=fusion)
        super().__init__(in_channels, channels, num_classes, num_convs=2, concat_input=True, dropout=dropout,
                         norm=norm, attention=block)

    def mmseg_init(self):
        """mmcv's ``ContextBlock.reset_parameters``: the mask conv He normal (fan-in, ReLU gain) with a zero bias;
        the last conv of each transform at zero, as ours starts."""
        if self.attention.conv_mask is not None:
            nn.init.kaiming_normal_(self.attention.conv_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.attention.conv_mask.bias)

    def attention_maps(self, x: torch.Tensor) -> dict:
        return {"context": self.attention.weights(self.convs[0](x))}
