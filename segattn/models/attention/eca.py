"""Efficient Channel Attention (Wang et al., CVPR 2020, Sec. 3.3, Eq. 12).

A 1-D convolution of kernel ``k`` across the pooled channel descriptor, no
dimensionality reduction: ``k = |log2(C) / gamma + b / gamma|`` rounded to the
nearest odd number, gamma = 2, b = 1. Only ``k`` parameters.
"""
import math

import torch
from torch import nn

from ..registry import ATTENTION


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    t = int(abs(math.log2(channels) / gamma + b / gamma))
    return t if t % 2 else t + 1


@ATTENTION.register("eca")
class ECABlock(nn.Module):
    family = "channel"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, gamma: int = 2, b: int = 1):
        super().__init__()
        k = eca_kernel_size(channels, gamma, b)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3))[:, None, :]  # B, 1, C
        return torch.sigmoid(self.conv(y))[:, 0, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)
