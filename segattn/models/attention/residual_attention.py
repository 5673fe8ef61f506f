"""Residual attention module (Wang et al., CVPR 2017, Sec. 3.1-3.2, Eq. 3).

``H(x) = (1 + M(x)) * T(x)``: the trunk T is two pre-activation residual units;
the soft mask M is a bottom-up top-down hourglass (max-pool twice, residual
units, bilinear up-sampling twice with a skip connection), then
BN-ReLU-1x1-BN-ReLU-1x1-sigmoid, so M is in (0, 1) and identity is never lost.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ATTENTION


class PreActUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False))

    def forward(self, x):
        return x + self.body(x)


@ATTENTION.register("residual")
class ResidualAttentionBlock(nn.Module):
    family = "both"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int):
        super().__init__()
        self.trunk = nn.Sequential(PreActUnit(channels), PreActUnit(channels))
        self.down1, self.down2 = PreActUnit(channels), PreActUnit(channels)
        self.skip, self.up1 = PreActUnit(channels), PreActUnit(channels)
        self.mask_out = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1),
                                      nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(F.max_pool2d(x, 3, 2, 1))
        d2 = self.down2(F.max_pool2d(d1, 3, 2, 1))
        u1 = self.up1(F.interpolate(d2, size=d1.shape[-2:], mode="bilinear", align_corners=False) + self.skip(d1))
        u0 = F.interpolate(u1, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.mask_out(u0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1 + self.mask(x)) * self.trunk(x)
