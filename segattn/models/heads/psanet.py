"""PSANet head (Zhao et al., ECCV 2018, Sec. 3): point-wise spatial attention, collect and distribute.

"PSANet: Point-wise Spatial Attention Network for Scene Parsing": each position
predicts, with 1x1 convs, one weight for every position of a window around it
(``mask_size``, over-complete: (2H - 1) x (2W - 1) covers the map from any
point). The collect branch reads the weights as what the position gathers from
each other one; the distribute branch as what it sends, transposed, so a
position gathers what the others decided to send it. Both run on the features
shrunk by 2 (bilinear), their weights laid over the map by PSANet's mask op
(:mod:`segattn.ops.psa_mask`) and soft-maxed over the sources; the two results
are concatenated, projected back to the input's channels, resized to it,
concatenated with the input and fused by a 3x3 conv-norm-ReLU: mmsegmentation's
``PSAHead`` (bi-direction, not compact, shrink factor 2, normalisation 1), its
quirks kept so its weights give its logits (the projection is a 1x1 conv with
padding 1, whose border the resize folds in; the final resize takes the
shrinking's corner alignment). The weights are ``(HW)^2`` at the shrunk size:
23 MB an image at the 769 crop's 49 x 49, and the window weights they are laid
out from 90 MB (97 x 97 a position). Training keeps neither: each branch from
its predictor's hidden map to its pooled features (the last conv, the mask op,
the softmax, the weighted sum) is recomputed in backward
(``torch.utils.checkpoint``; no norm in it, so no statistic is updated twice),
for a tenth more forward work in training and the same numbers.
"""
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...ops.psa_mask import psa_mask
from ..layers import ConvNormReLU
from ..registry import HEADS
from .base import DecodeHead

PSA_TYPES = ("collect", "distribute", "bi-direction")


def _predictor(channels: int, mask_h: int, mask_w: int, norm) -> nn.Sequential:
    """1x1 conv-norm-ReLU, then a 1x1 conv to one weight per window offset."""
    return nn.Sequential(ConvNormReLU(channels, channels, 1, norm), nn.Conv2d(channels, mask_h * mask_w, 1, bias=False))


@HEADS.register("psanet")
class PSAHead(DecodeHead):
    title = "PSANet"
    family = "self-attention"
    mmseg_type = "PSAHead"
    map_kinds = ("point_wise",)
    # the mask op's two gathers and its window test
    onnx_operators = frozenset({"GatherElements", "Less", "GreaterOrEqual", "And", "Clip", "Expand",
                                "ConstantOfShape"})

    def __init__(self, in_channels: int, channels: int, num_classes: int, mask_size=(97, 97),
                 psa_type: str = "bi-direction", shrink_factor: int = 2, normalization_factor: float = 1.0,
                 psa_softmax: bool = True, dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        mask_size = tuple(mask_size)
        if len(mask_size) != 2 or min(mask_size) < 1:
            raise ValueError(f"mask_size must be two sizes >= 1 (height, width), got {list(mask_size)}")
        if psa_type not in PSA_TYPES:
            raise ValueError(f"psa_type must be one of {', '.join(PSA_TYPES)}, got {psa_type!r}")
        if shrink_factor < 1:
            raise ValueError(f"shrink_factor must be >= 1, got {shrink_factor}")
        self.mask_size, self.psa_type, self.shrink_factor = mask_size, psa_type, shrink_factor
        self.psa_softmax = psa_softmax
        self.normalization_factor = normalization_factor if normalization_factor is not None else (
            mask_size[0] * mask_size[1])
        self.branches = ("collect", "distribute") if psa_type == "bi-direction" else (psa_type,)
        # mmsegmentation's names: reduce / attention for the first branch, reduce_p / attention_p for distribute
        self.reduce = ConvNormReLU(in_channels, channels, 1, norm)
        self.attention = _predictor(channels, *mask_size, norm)
        if psa_type == "bi-direction":
            self.reduce_p = ConvNormReLU(in_channels, channels, 1, norm)
            self.attention_p = _predictor(channels, *mask_size, norm)
        self.proj = ConvNormReLU(channels * len(self.branches), in_channels, 1, norm, padding=1)
        self.bottleneck = ConvNormReLU(in_channels * 2, channels, norm=norm)

    def _shrunk(self, h: int, w: int):
        """The shrunk size and the corner alignment mmsegmentation uses for it (and for the resize back)."""
        s = self.shrink_factor
        if s == 1:
            return h, w, False
        if h % s and w % s:
            return (h - 1) // s + 1, (w - 1) // s + 1, True
        return h // s, w // s, False

    def _branches(self, x: torch.Tensor):
        """``[(branch, shrunk features (N, C, h, w), its predictor's hidden map, the predictor's last conv)]``."""
        h, w, corners = self._shrunk(*x.shape[-2:])
        out = []
        for branch, reduce, attention in zip(self.branches, (self.reduce, getattr(self, "reduce_p", None)),
                                             (self.attention, getattr(self, "attention_p", None))):
            feats = reduce(x)
            if self.shrink_factor != 1:
                feats = F.interpolate(feats, size=(h, w), mode="bilinear", align_corners=corners)
            out.append((branch, feats, attention[0](feats), attention[1]))
        return out, corners

    def _weights(self, branch: str, conv: nn.Conv2d, hidden: torch.Tensor) -> torch.Tensor:
        """``(N, hw, hw)``: the weights over the sources (rows), per target (column)."""
        n, _, h, w = hidden.shape
        weights = psa_mask(conv(hidden), branch, self.mask_size)
        if self.psa_softmax:
            weights = torch.softmax(weights, dim=1)
        return weights.reshape(n, h * w, h * w)

    def _pooled(self, branch: str, conv: nn.Conv2d, hidden: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        n, c, h, w = feats.shape
        weights = self._weights(branch, conv, hidden)
        return torch.bmm(feats.reshape(n, c, h * w), weights).reshape(n, c, h, w) * (1.0 / self.normalization_factor)

    def forward(self, x: torch.Tensor) -> dict:
        branches, corners = self._branches(x)
        lean = torch.is_grad_enabled() and not torch.jit.is_tracing()  # recomputed in backward (module docstring)
        pooled = [checkpoint(partial(self._pooled, branch, conv), hidden, feats, use_reentrant=False) if lean
                  else self._pooled(branch, conv, hidden, feats) for branch, feats, hidden, conv in branches]
        out = F.interpolate(self.proj(torch.cat(pooled, 1)), size=x.shape[-2:], mode="bilinear",
                            align_corners=corners)
        return {"main": self.cls_seg(self.bottleneck(torch.cat([x, out], 1)))}

    def attention_maps(self, x: torch.Tensor) -> dict:
        branches, corners = self._branches(x)
        size = tuple(x.shape[-2:])
        return {"point_wise": {branch: ShrunkRows(self._weights(branch, conv, hidden), feats.shape[-2:], size,
                                                  corners)
                               for branch, feats, hidden, conv in branches}}


class ShrunkRows:
    """Weights ``(N, hw, hw)`` on the shrunk grid read on the feature grid ``(H, W)``: ``rows[b, i]`` is feature
    cell i's nearest shrunk query's weights, spread back over the feature cells through the bilinear shrinking
    (its adjoint), so they sum to 1 as the shrunk ones do and say which feature cells the query reads."""

    def __init__(self, weights: torch.Tensor, shrunk, size, corners: bool):
        self.weights, (self.h, self.w), (self.H, self.W), self.corners = weights, tuple(shrunk), size, corners
        self.shape = (weights.shape[0], self.H * self.W, self.H * self.W)

    def __getitem__(self, key) -> torch.Tensor:
        b, i = key
        y, x = divmod(int(i), self.W)
        sy = min(self.h - 1, round(y * (self.h - 1) / max(1, self.H - 1)))
        sx = min(self.w - 1, round(x * (self.w - 1) / max(1, self.W - 1)))
        column = self.weights[b, :, sy * self.w + sx].float().detach().cpu().reshape(1, 1, self.h, self.w)
        with torch.enable_grad():
            grid = torch.zeros(1, 1, self.H, self.W, requires_grad=True)
            shrunk = F.interpolate(grid, size=(self.h, self.w), mode="bilinear", align_corners=self.corners)
            (spread,) = torch.autograd.grad((shrunk * column).sum(), grid)
        return spread.reshape(-1)
