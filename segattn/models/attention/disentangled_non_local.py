"""Disentangled non-local block of DNLNet (Yin et al., ECCV 2020), the paper's Sec. 3.3 with temperature 0.05.

"Disentangled Non-Local Neural Networks": the non-local block's weights split
into a whitened pairwise term and a unary term. Pairwise: theta and phi have
their means over the positions subtracted before the dot product (so the
weights say how two pixels relate, not how salient the key is), divided by
sqrt of the inner channels when ``use_scale`` and by ``temperature``, then a
softmax over all HxW keys. Unary: a 1x1 conv to one channel and a softmax over
the positions (GCNet's context map), the same for every query. Both pool g;
``z = W_z(pairwise + unary) + x``, ``W_z`` starting at zero as in
:class:`~segattn.models.attention.non_local.NonLocalBlock`, whose options and
``impl="lean"`` (no ``HW x HW`` matrix kept) it shares.
"""
import torch
from torch import nn

from ...ops.full_attention import AttentionRows
from ..layers import as_sequence, attend_all
from ..registry import ATTENTION
from .non_local import NonLocalBlock


@ATTENTION.register("dnl")
class DisentangledNonLocalBlock(NonLocalBlock):
    family = "self-attention"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, reduction: int = 2, use_scale: bool = True, temperature: float = 0.05,
                 norm=None, impl: str = "lean"):
        super().__init__(channels, reduction, use_scale, norm, impl)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.conv_mask = nn.Conv2d(channels, 1, 1)  # the unary term's map (mmseg's name)

    @property
    def scale(self) -> float:
        return super().scale / self.temperature

    def whitened(self, x: torch.Tensor):
        """theta(x) and phi(x), each less its mean over the positions."""
        theta, phi = self.theta(x), self.phi(x)
        return theta - theta.mean((2, 3), keepdim=True), phi - phi.mean((2, 3), keepdim=True)

    def attention(self, x: torch.Tensor) -> AttentionRows:
        """The pairwise weights ``(B, HW, HW)``, row i = query i, each row formed when indexed."""
        theta, phi = self.whitened(x)
        return AttentionRows(as_sequence(theta), as_sequence(phi), self.scale)

    def unary(self, x: torch.Tensor) -> torch.Tensor:
        """The unary weights ``(B, HW)`` over the positions, summing to 1, the same for every query."""
        b, _, h, w = x.shape
        return torch.softmax(self.conv_mask(x).reshape(b, h * w), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta, phi = self.whitened(x)
        g = self.g(x)
        pairwise = attend_all(theta, phi, g, x, self.scale, self.impl)
        b, c, h, w = g.shape
        unary = torch.bmm(g.reshape(b, c, h * w), self.unary(x).unsqueeze(-1)).reshape(b, c, 1, 1)
        return x + self.conv_out(pairwise + unary)
