"""EMANet head (Li et al., ICCV 2019, Sec. 3.2-3.4): expectation-maximisation attention, K = 64 bases, T = 3 steps.

"Expectation-Maximization Attention Networks for Semantic Segmentation": in
place of a non-local block's HW x HW weights, a few EM steps fit K bases to
the pixels: E, each pixel's responsibilities ``z = softmax_K(x^T mu)``; M, each
basis the responsibility-weighted mean of the pixels, L2-normalised; then each
pixel is rebuilt from the bases, ``mu z^T`` (O(HW K) memory). As in the paper's
code and mmsegmentation's ``EMAHead``, the steps run without gradients (the
1x1 conv before them is frozen: nothing reaches it), the bases start from a
buffer that training moves by a moving average of each batch's fitted bases
(momentum 0.1, averaged across processes), and the unit is a residual branch:
3x3 conv -> 1x1 conv -> EM -> ReLU -> 1x1 conv-norm, added to the 3x3 conv's
output and ReLU'd; then a 3x3 bottleneck to ``channels``, the concat with the
input and the classifier.
"""
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..init import he_fan_out
from ..layers import ConvNorm, ConvNormReLU
from ..registry import HEADS
from .base import DecodeHead


class EMAUnit(nn.Module):
    """The EM iterations over a feature map (mmsegmentation's ``EMAModule``: same buffer name, same arithmetic)."""

    def __init__(self, channels: int, num_bases: int = 64, num_stages: int = 3, momentum: float = 0.1):
        super().__init__()
        if num_bases < 1 or num_stages < 1:
            raise ValueError(f"num_bases and num_stages must be >= 1, got {num_bases} and {num_stages}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_stages, self.momentum = num_stages, momentum
        bases = torch.randn(1, channels, num_bases) * math.sqrt(2.0 / num_bases)
        self.register_buffer("bases", F.normalize(bases, dim=1))  # (1, C, K), unit columns

    @torch.no_grad()
    def fit(self, feats: torch.Tensor):
        """``feats (B, C, N)`` -> the fitted bases ``(B, C, K)`` and the last E step's responsibilities ``(B, N, K)``."""
        bases = self.bases.to(feats.dtype)  # (1, C, K): the first product broadcasts it over the batch
        for _ in range(self.num_stages):
            z = torch.softmax(torch.matmul(feats.transpose(1, 2), bases), dim=2)  # E: (B, N, K)
            weights = F.normalize(z, p=1, dim=1)                                  # each basis' weights over N
            bases = F.normalize(torch.bmm(feats, weights), dim=1)                 # M: (B, C, K)
        return bases, z

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.fit(x.flatten(2))[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        bases, z = self.fit(x.reshape(b, c, h * w))
        recon = torch.bmm(bases, z.transpose(1, 2)).reshape(b, c, h, w)
        if self.training:
            with torch.no_grad():
                mean = bases.mean(0, keepdim=True)
                if dist.is_available() and dist.is_initialized():
                    mean = mean / dist.get_world_size()
                    dist.all_reduce(mean)
                self.bases.mul_(1 - self.momentum).add_(F.normalize(mean, dim=1).to(self.bases.dtype),
                                                        alpha=self.momentum)
        return recon


@HEADS.register("emanet")
class EMAHead(DecodeHead):
    title = "EMANet"
    family = "self-attention"
    mmseg_type = "EMAHead"
    map_kinds = ("em_bases",)
    onnx_operators = frozenset({"ReduceL1", "ReduceL2", "Clip", "Expand"})  # F.normalize in the EM steps

    def __init__(self, in_channels: int, channels: int, num_classes: int, ema_channels: int = 512,
                 num_bases: int = 64, num_stages: int = 3, momentum: float = 0.1, concat_input: bool = True,
                 dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        # mmsegmentation's names and order, so its weights load as they are and layers initialise alike
        self.ema_module = EMAUnit(ema_channels, num_bases, num_stages, momentum)
        self.ema_in_conv = ConvNormReLU(in_channels, ema_channels, norm=norm)
        self.ema_mid_conv = nn.Conv2d(ema_channels, ema_channels, 1)  # maps (0, inf) to (-inf, inf); no gradient
        self.ema_mid_conv.requires_grad_(False)                       # reaches it through the EM steps
        self.ema_out_conv = ConvNorm(ema_channels, ema_channels, 1, norm)
        self.bottleneck = ConvNormReLU(ema_channels, channels, norm=norm)
        self.conv_cat = ConvNormReLU(in_channels + channels, channels, norm=norm) if concat_input else None

    def forward(self, x: torch.Tensor) -> dict:
        feats = self.ema_in_conv(x)
        recon = self.ema_out_conv(F.relu(self.ema_module(self.ema_mid_conv(feats))))
        out = self.bottleneck(F.relu(feats + recon))
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return {"main": self.cls_seg(out)}

    def mmseg_init(self):
        """The 1x1 conv before the EM steps is an mmcv ``ConvModule`` without norm: He fan-out too."""
        he_fan_out(self.ema_mid_conv)

    def attention_maps(self, x: torch.Tensor) -> dict:
        return {"em_bases": self.ema_module.responsibilities(self.ema_mid_conv(self.ema_in_conv(x)))}
