"""Selective Kernel unit (Li et al., CVPR 2019, Sec. 3.1): split, fuse, select.

Split: a 3x3 and a dilated 3x3 (dilation 2, the paper's cheaper 5x5) conv-BN-ReLU
branch. Fuse: ``s = avgpool(U1 + U2)``, ``z = relu(bn(fc(s)))`` with
``d = max(C / r, L)``, r = 16, L = 32. Select: per-branch fc from z, softmax
across the branches, ``V = a1 * U1 + a2 * U2``.
"""
import torch
from torch import nn

from ..registry import ATTENTION


@ATTENTION.register("sk")
class SKBlock(nn.Module):
    family = "channel"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, reduction: int = 16, min_dim: int = 32, groups: int = 1):
        super().__init__()
        d = max(channels // reduction, min_dim)
        self.branches = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=dil, dilation=dil, groups=groups, bias=False),
                          nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for dil in (1, 2)])
        self.fc = nn.Sequential(nn.Conv2d(channels, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True))
        self.select = nn.Conv2d(d, channels * 2, 1)

    def attention(self, feats):
        """Branch weights ``(B, 2, C, 1, 1)``, softmax over the branches."""
        z = self.fc(sum(feats).mean((2, 3), keepdim=True))
        b, c = feats[0].shape[:2]
        return torch.softmax(self.select(z).view(b, 2, c, 1, 1), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [branch(x) for branch in self.branches]
        a = self.attention(feats)
        return a[:, 0] * feats[0] + a[:, 1] * feats[1]
