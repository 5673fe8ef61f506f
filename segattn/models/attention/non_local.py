"""Non-local block, embedded-Gaussian form (Wang et al., CVPR 2018, Sec. 3.2-3.3).

``x (B, C, H, W)``: theta, phi, g are 1x1 convs to ``C // reduction``;
``f = softmax(theta^T phi)`` over all HxW positions (divided by sqrt of the
inner channels first when ``use_scale``, as mmsegmentation does);
``y = g f^T``; ``z = W_z(y) + x``. ``W_z`` is a 1x1 conv back to C, followed by
a norm whose weight starts at 0 (paper Sec. 4.1) or, without norm, a conv
whose weights start at 0, so the block starts as the identity. ``norm`` is
None, a norm name (``bn``, ``gn``) or a ``channels -> module`` callable.
``impl="lean"`` never keeps ``f`` (O(HW) memory for backward, see
:mod:`segattn.ops.full_attention`); ``"dense"`` is the paper's form, which does.
"""
import torch
from torch import nn

from ...ops.full_attention import AttentionRows, check_impl
from ..layers import ConvNorm, as_sequence, attend_all, norm_layer
from ..registry import ATTENTION


@ATTENTION.register("nonlocal")
class NonLocalBlock(nn.Module):
    family = "self-attention"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, reduction: int = 2, use_scale: bool = True, norm=None, impl: str = "lean"):
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        if isinstance(norm, str):
            norm = norm_layer(norm)
        inter = max(1, channels // reduction)
        self.inter_channels = inter
        self.use_scale = use_scale
        self.impl = check_impl(impl)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        if norm is None:
            self.conv_out = nn.Conv2d(inter, channels, 1)
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)
        else:
            self.conv_out = ConvNorm(inter, channels, 1, norm)
            nn.init.zeros_(self.conv_out[1].weight)

    @property
    def scale(self) -> float:
        return self.inter_channels ** -0.5 if self.use_scale else 1.0

    def attention(self, x: torch.Tensor) -> AttentionRows:
        """Pairwise weights ``(B, HW, HW)``, row i = query position i, each row formed when indexed."""
        return AttentionRows(as_sequence(self.theta(x)), as_sequence(self.phi(x)), self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_out(attend_all(self.theta(x), self.phi(x), self.g(x), x, self.scale, self.impl))
