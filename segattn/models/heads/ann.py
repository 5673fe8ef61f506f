"""ANN head (Zhu et al., ICCV 2019, Sec. 3): asymmetric non-local blocks, keys and values pyramid-pooled.

"Asymmetric Non-local Neural Networks for Semantic Segmentation": a non-local
block whose keys and values are the adaptive average pools of the projected map
at 1, 3, 6 and 8 cells a side (110 positions, PSPNet's pyramid), so a query
weighs 110 summaries instead of every pixel (``O(HW x 110)``). The fusion block
(AFNB) takes its queries from layer4 and its keys and values from layer3; the
context block (APNB) is the same on the fused map, queries and keys sharing one
projection. In mmsegmentation's ``ANNHead`` arrangement: AFNB (its context
summed over the query scales, concatenated with layer4 and fused by a 1x1
conv-norm) -> dropout -> 3x3 conv-norm-ReLU to ``channels`` -> APNB (concat,
1x1 conv-norm-ReLU) -> the classifier (dropout again, 1x1). Each attention's
output projection starts at zero, so the head starts without its context.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNorm, ConvNormReLU, as_sequence
from ..registry import HEADS
from .base import DecodeHead


def _bins(size, s: int) -> torch.Tensor:
    """``(s, size)``: row i averages PyTorch's adaptive bin i, floor(i size / s) to ceil((i + 1) size / s); in
    integer arithmetic on the traced size, so an ONNX export keeps it for any input size."""
    i = torch.arange(s).unsqueeze(1)
    start, end = (i * size) // s, ((i + 1) * size + s - 1) // s
    p = torch.arange(size).unsqueeze(0)
    inside = ((p >= start) & (p < end)).float()
    return inside / (end - start).float()


def pyramid_pool(x: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, sum s^2)``: the adaptive average pools at each scale, cells in row order.

    ONNX has no adaptive pooling for a dynamic size (PyTorch's exporter refuses it): traced, each pool is the
    product of its row and column bins, ``P_h x P_w^T``, the same averages (the export test holds them to the
    eager form, PyTorch's own pooling, which is mmsegmentation's)."""
    b, c, h, w = x.shape
    if torch.jit.is_tracing():
        return torch.cat([torch.matmul(torch.matmul(_bins(h, s).to(x.dtype), x), _bins(w, s).to(x.dtype).t())
                          .reshape(b, c, s * s) for s in scales], dim=2)
    return torch.cat([F.adaptive_avg_pool2d(x, s).reshape(b, c, s * s) for s in scales], dim=2)


def pyramid_spread(weights: torch.Tensor, scales: Sequence[int], h: int, w: int) -> torch.Tensor:
    """Weights over the pooled cells ``(S,)`` as weights over the ``h x w`` pixels: each cell's weight shared by
    the pixels it averages (PyTorch's adaptive bins: floor(i H / s) to ceil((i + 1) H / s)), so that attending to
    the cells is attending to the pixels with these weights."""
    out, start = torch.zeros(h, w, dtype=weights.dtype), 0
    for s in scales:
        cells = weights[start:start + s * s].reshape(s, s)
        start += s * s
        rows = [(i * h // s, -(-(i + 1) * h // s)) for i in range(s)]
        cols = [(j * w // s, -(-(j + 1) * w // s)) for j in range(s)]
        for i, (y0, y1) in enumerate(rows):
            for j, (x0, x1) in enumerate(cols):
                out[y0:y1, x0:x1] += cells[i, j] / ((y1 - y0) * (x1 - x0))
    return out.reshape(-1)


class PyramidRows:
    """A pyramid attention's weights ``(B, HW, S)`` read as ``(B, HW, HW)``: ``rows[b, i]`` spreads query i's row."""

    def __init__(self, weights: torch.Tensor, scales: Sequence[int], size):
        self.weights, self.scales, (self.h, self.w) = weights, tuple(scales), size
        self.shape = (weights.shape[0], weights.shape[1], self.h * self.w)

    def __getitem__(self, key) -> torch.Tensor:
        b, i = key
        return pyramid_spread(self.weights[b, i].float().cpu(), self.scales, self.h, self.w)


class PyramidAttention(nn.Module):
    """Queries from ``query_feats``, keys and values from the pyramid pools of ``key_feats`` (mmsegmentation's
    ANN ``SelfAttentionBlock``: 1x1 conv-norm-ReLU query and key projections, shared when ``share_key_query``;
    a 1x1 conv value and output projection, the output one starting at zero; an optional max-pool of the queries
    by ``query_scale``, whose output keeps the query map's size as mmsegmentation's does)."""

    def __init__(self, key_channels: int, query_channels: int, channels: int, out_channels: int,
                 share_key_query: bool, query_scale: int, key_pool_scales: Sequence[int], norm=nn.BatchNorm2d):
        super().__init__()
        if share_key_query and key_channels != query_channels:
            raise ValueError("share_key_query needs the same query and key channels")
        self.key_pool_scales = tuple(key_pool_scales)
        self.key_project = ConvNormReLU(key_channels, channels, 1, norm)
        self.query_project = self.key_project if share_key_query else ConvNormReLU(query_channels, channels, 1, norm)
        self.value_project = nn.Conv2d(key_channels, channels, 1)
        self.out_project = nn.Conv2d(channels, out_channels, 1)
        nn.init.zeros_(self.out_project.weight)
        nn.init.zeros_(self.out_project.bias)
        self.query_downsample = nn.MaxPool2d(query_scale) if query_scale > 1 else None
        self.scale = channels ** -0.5

    def _query_key_value(self, query_feats, key_feats):
        query = self.query_project(query_feats)
        if self.query_downsample is not None:
            query = self.query_downsample(query)
        key = pyramid_pool(self.key_project(key_feats), self.key_pool_scales)        # (B, C', S)
        value = pyramid_pool(self.value_project(key_feats), self.key_pool_scales)    # (B, C', S)
        return as_sequence(query), key, value

    def weights(self, query_feats, key_feats) -> torch.Tensor:
        """``(B, N_query, S)``: each query's softmax over the pooled cells."""
        query, key, _ = self._query_key_value(query_feats, key_feats)
        return self._softmax(query, key)

    def _softmax(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.bmm(query, key) * self.scale, dim=-1)

    def forward(self, query_feats: torch.Tensor, key_feats: torch.Tensor) -> torch.Tensor:
        query, key, value = self._query_key_value(query_feats, key_feats)
        context = torch.bmm(self._softmax(query, key), value.transpose(1, 2))
        b, _, h, w = query_feats.shape
        return self.out_project(context.transpose(1, 2).reshape(b, -1, h, w))


class PyramidBlock(nn.Module):
    """AFNB (``fusion=True``: layer4 queries, layer3 keys; 1x1 conv-norm after the concat) or APNB (one map,
    shared query and key projections; 1x1 conv-norm-ReLU after), the attention summed over ``query_scales``."""

    def __init__(self, key_channels: int, query_channels: int, channels: int, out_channels: int,
                 query_scales: Sequence[int], key_pool_scales: Sequence[int], fusion: bool, norm=nn.BatchNorm2d):
        super().__init__()
        self.stages = nn.ModuleList(
            PyramidAttention(key_channels, query_channels, channels, out_channels, not fusion, scale,
                             key_pool_scales, norm) for scale in query_scales)
        if fusion:
            self.bottleneck = ConvNorm(out_channels + query_channels, out_channels, 1, norm)
        else:
            self.bottleneck = ConvNormReLU(2 * query_channels, out_channels, 1, norm)

    def forward(self, query_feats: torch.Tensor, key_feats: torch.Tensor) -> torch.Tensor:
        context = sum(stage(query_feats, key_feats) for stage in self.stages)  # Adds (no ReduceSum to export)
        return self.bottleneck(torch.cat([context, query_feats], 1))


@HEADS.register("ann")
class ANNHead(DecodeHead):
    title = "ANN"
    family = "self-attention"
    mmseg_type = "ANNHead"
    takes_layer3 = True
    map_kinds = ("pyramid",)
    onnx_operators = frozenset({"GreaterOrEqual", "Less", "And", "Expand"})  # the pools' bins, traced

    def __init__(self, in_channels, channels: int, num_classes: int, project_channels: int = 256,
                 query_scales: Sequence[int] = (1,), key_pool_scales: Sequence[int] = (1, 3, 6, 8),
                 dropout: float = 0.1, norm=nn.BatchNorm2d):
        low, high = in_channels
        super().__init__(high, channels, num_classes, dropout, norm)
        if not query_scales or not key_pool_scales or min(*query_scales, *key_pool_scales) < 1:
            raise ValueError(f"query_scales and key_pool_scales must list sizes >= 1, got {list(query_scales)} and "
                             f"{list(key_pool_scales)}")
        self.fusion = PyramidBlock(low, high, project_channels, high, query_scales, key_pool_scales, True, norm)
        self.bottleneck = ConvNormReLU(high, channels, norm=norm)
        self.context = PyramidBlock(channels, channels, project_channels, channels, query_scales, key_pool_scales,
                                    False, norm)

    def forward(self, inputs) -> dict:
        low, high = inputs
        out = self.cls_seg[0](self.fusion(high, low))  # mmsegmentation's dropout after the fusion (the classifier's)
        out = self.context(*(2 * [self.bottleneck(out)]))
        return {"main": self.cls_seg(out)}

    def attention_maps(self, inputs) -> dict:
        low, high = inputs
        fused = self.bottleneck(self.fusion(high, low))
        size, scales = tuple(high.shape[-2:]), self.fusion.stages[0].key_pool_scales
        return {"pyramid": (PyramidRows(self.fusion.stages[0].weights(high, low), scales, size),
                            PyramidRows(self.context.stages[0].weights(fused, fused), scales, size))}
