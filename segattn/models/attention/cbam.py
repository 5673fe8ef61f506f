"""Convolutional Block Attention Module (Woo et al., ECCV 2018, Sec. 3; r = 16, 7x7).

Channel attention: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` with one shared
MLP (C -> C/r -> C); then spatial attention on the channel-refined map:
``sigmoid(conv7x7([mean_c(x'); max_c(x')]))``.
"""
import torch
from torch import nn

from ..registry import ATTENTION


@ATTENTION.register("cbam")
class CBAMBlock(nn.Module):
    family = "both"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def channel_weights(self, x):
        return torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))

    def spatial_weights(self, x):
        return torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_weights(x)
        return x * self.spatial_weights(x)
