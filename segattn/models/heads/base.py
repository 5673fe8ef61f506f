"""What every decode head shares: its norm, its classifier and its output contract.

A head maps encoder features ``(B, C_in, H, W)`` to a dict of logits
``{"main": (B, K, H, W), ...}``. Extra entries a head returns in training
(DANet's single-branch predictions) are weighted by the head's own
``loss_weights``; ``attention_maps`` gives an attention head's maps for the
analysis tools, so nothing outside the head needs to know its attributes.
"""
from typing import Dict

import torch
from torch import nn

from ..layers import Classifier


class DecodeHead(nn.Module):
    # old state-dict key prefixes -> current ones, for checkpoints written before a rename
    legacy_keys: Dict[str, str] = {}
    # mmsegmentation's key prefixes for this head's modules -> ours (segattn.interop.mmseg; its ConvModule's
    # ``conv`` / ``bn`` and mmcv's ``Scale`` are mapped there, for every head)
    mmseg_keys: Dict[str, str] = {"conv_seg.": "cls_seg.1."}
    mmseg_type: str = None  # mmsegmentation's name of this head, for messages about its checkpoints

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1,
                 norm=nn.BatchNorm2d):
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.norm = norm
        self.cls_seg = Classifier(channels, num_classes, dropout)
        self.loss_weights: Dict[str, float] = {}  # extra outputs' loss weights; "main" is always 1

    def attention_maps(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Attention weights of one forward on head input ``x``; empty for a head without attention.

        Keys name the attention form, so the analysis code needs no head names:
        ``criss_cross`` ``(R, B, H, W, H+W)``, one map per loop (column then row,
        the self entry 0 in the column); ``position`` and ``non_local``
        ``(B, HW, HW)``, a tensor or an :class:`segattn.ops.full_attention.AttentionRows` that
        forms a row when indexed ``[b, i]`` (no ``HW x HW`` matrix for a large image);
        ``channel`` ``(B, C, C)`` with the features it weighs as ``channel_input`` ``(B, C, H, W)``.
        """
        return {}
