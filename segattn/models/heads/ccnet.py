"""CCNet recurrent criss-cross attention head (Huang et al., ICCV 2019, Sec. 3.1, Fig. 2).

``x (B, 2048, H, W)`` -> 3x3 conv to 512 -> criss-cross attention applied
``recurrence`` times with shared weights (R = 2 in the paper: two loops give
every pixel full-image context) -> 3x3 conv -> concat with ``x`` -> 3x3
bottleneck to 512 -> dropout 0.1 -> 1x1 classifier: the FCN frame with the
attention between its two convs.
"""
import torch
from torch import nn

from ...ops import CrissCrossAttention
from ...ops.reference import criss_cross_attention_maps
from ..registry import HEADS
from .fcn import FCNHead


@HEADS.register("ccnet")
class RCCAHead(FCNHead):
    title = "CCNet"
    family = "self-attention"
    legacy_keys = {"conva.": "convs.0.", "convb.": "convs.1.", "cca.": "attention.", "bottleneck.": "conv_cat."}
    legacy_options = {"recurrence": "recurrence"}
    mmseg_keys = {**FCNHead.mmseg_keys, "cca.": "attention."}
    mmseg_type = "CCHead"
    map_kinds = ("criss_cross",)

    def __init__(self, in_channels: int, channels: int, num_classes: int, recurrence: int = 2,
                 dropout: float = 0.1, norm=nn.BatchNorm2d):
        if recurrence < 1:
            raise ValueError(f"recurrence must be >= 1, got {recurrence}")
        super().__init__(in_channels, channels, num_classes, num_convs=2, concat_input=True, dropout=dropout,
                         norm=norm, attention=CrissCrossAttention)
        self.recurrence = recurrence

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):  # one module: the loops share weights
            x = self.attention(x)
        return x

    def attention_maps(self, x: torch.Tensor) -> dict:
        out, loops = self.convs[0](x), []
        for _ in range(self.recurrence):
            q, k, _ = self.attention.qkv(out)
            loops.append(criss_cross_attention_maps(q, k))
            out = self.attention(out)
        return {"criss_cross": torch.stack(loops)}
