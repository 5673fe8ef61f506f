"""Squeeze-and-Excitation (Hu et al., CVPR 2018, Sec. 3; reduction r = 16).

``x (B, C, H, W) -> x * sigmoid(W2 relu(W1 avgpool(x)))`` with W1: C -> C/r, W2: C/r -> C.
"""
import torch
from torch import nn

from ..registry import ATTENTION


@ATTENTION.register("se")
class SEBlock(nn.Module):
    family = "channel"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights ``(B, C, 1, 1)`` in (0, 1)."""
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)
