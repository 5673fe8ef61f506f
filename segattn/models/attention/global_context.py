"""Global context block of GCNet (Cao et al., ICCV-W 2019), the paper's Sec. 4 with bottleneck ratio 1/16.

"GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond"; mmsegmentation's GCHead uses ratio 1/4.

One query-independent attention map for the whole image: ``softmax_HW(W_k x)``
(a 1x1 conv to one channel, a softmax over the positions) pools ``x`` into one
context vector, as a non-local block's rows turn out to be nearly the same for
every query (the paper's Fig. 2). The vector goes through a bottleneck
``conv -> LayerNorm -> ReLU -> conv`` and is added to every position
(``fusion="add"``); ``"mul"`` gates the channels with its sigmoid instead, and
both may be given. The last conv of each transform starts at zero, so the
block starts as the identity (``"mul"`` then scales by one half: the paper's
add is the default). ``pooling="avg"`` replaces the attention by average
pooling (the paper's ablation, an SE-like summary).
"""
from typing import Sequence

import torch
from torch import nn

from ..registry import ATTENTION

FUSIONS = ("add", "mul")


def _transform(channels: int, planes: int) -> nn.Sequential:
    last = nn.Conv2d(planes, channels, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(inplace=True), last)


@ATTENTION.register("gc")
class GlobalContextBlock(nn.Module):
    family = "both"  # the survey's family (benchmarks/atlas.py)
    def __init__(self, channels: int, ratio: float = 1 / 16, pooling: str = "att",
                 fusion: Sequence[str] = ("add",)):
        super().__init__()
        fusion = (fusion,) if isinstance(fusion, str) else tuple(fusion)
        if pooling not in ("att", "avg"):
            raise ValueError(f"pooling must be att or avg, got {pooling!r}")
        if not fusion or any(f not in FUSIONS for f in fusion):
            raise ValueError(f"fusion must list add and/or mul, got {list(fusion)}")
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        planes = max(1, int(channels * ratio))
        self.pooling = pooling
        # the names of mmcv's ContextBlock, so mmsegmentation's GCHead weights load as they are
        self.conv_mask = nn.Conv2d(channels, 1, 1) if pooling == "att" else None
        self.channel_add_conv = _transform(channels, planes) if "add" in fusion else None
        self.channel_mul_conv = _transform(channels, planes) if "mul" in fusion else None

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention over positions, ``(B, HW)`` summing to 1 (uniform for ``pooling="avg"``)."""
        b, _, h, w = x.shape
        if self.conv_mask is None:
            return x.new_full((b, h * w), 1.0 / (h * w))
        return torch.softmax(self.conv_mask(x).reshape(b, h * w), dim=1)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled context ``(B, C, 1, 1)``: the positions weighted by :meth:`weights`."""
        b, c = x.shape[:2]
        if self.conv_mask is None:
            return x.mean((2, 3), keepdim=True)
        pooled = torch.bmm(x.reshape(b, c, -1), self.weights(x).unsqueeze(-1))  # (B, C, 1)
        return pooled.reshape(b, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(context))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(context)
        return out
