"""Multi-head self-attention over pixels (Vaswani et al., NeurIPS 2017, Sec. 3.2), as a residual block.

``x (B, C, H, W)``: the HW pixels are tokens; ``x + gamma * W_o MHSA(LN(x))``
with ``heads`` heads of width C / heads and gamma initialised to 0 so the block
starts as the identity (as PAM and CCA do).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ATTENTION


@ATTENTION.register("mhsa")
class SelfAttentionBlock(nn.Module):
    family = "self-attention"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, heads: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"self-attention: channels {channels} must be divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        q, k, v = self.qkv(self.norm(tokens)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # B, heads, N, c/heads
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        return x + self.gamma * self.attend(tokens).transpose(1, 2).view(b, c, h, w)
