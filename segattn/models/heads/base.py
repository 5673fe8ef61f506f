"""What every decode head shares: its norm, its classifier and its output contract.

A head maps encoder features ``(B, C_in, H, W)`` to a dict of logits
``{"main": (B, K, H, W), ...}``; extra entries (DANet's single-branch
predictions) get their own loss weights in the recipe.
"""
from torch import nn

from ..layers import Classifier


class DecodeHead(nn.Module):
    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1,
                 norm=nn.BatchNorm2d):
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.norm = norm
        self.cls_seg = Classifier(channels, num_classes, dropout)
