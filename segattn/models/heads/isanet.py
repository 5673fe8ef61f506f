"""ISANet head (Huang et al., 2019, Sec. 3): interlaced sparse self-attention, long-range then short-range.

"Interlaced Sparse Self-Attention for Semantic Segmentation": the map is cut into
``P_h x P_w`` blocks (8 x 8 by default; zero-padded, centred, to a multiple).
The long-range step lets each pixel attend to the pixels at the same offset in
every block; the short-range step then to the pixels of its own block. Two
sparse matrices whose product reaches every pixel, at ``O(HW (HW / P + P))``
instead of ``O((HW)^2)``. Each step is mmsegmentation's ISA ``SelfAttentionBlock``
(query and key: two 1x1 conv-norm-ReLUs to ``isa_channels``; value: a 1x1
conv; the product scaled by ``isa_channels ** -0.5``; a 1x1 conv-norm-ReLU
after); as in ``ISAHead``, a 3x3 conv-norm-ReLU before, the result
concatenated with that conv's output and fused by a 1x1 conv-norm-ReLU.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ...ops.full_attention import check_impl
from ..layers import ConvNormReLU, as_sequence, attend_all
from ..registry import HEADS
from .base import DecodeHead


class GroupSelfAttention(nn.Module):
    """Self-attention among the pixels of each batch item (a group, after the head's regrouping)."""

    def __init__(self, channels: int, inner: int, norm=nn.BatchNorm2d, impl: str = "lean"):
        super().__init__()
        self.key_project = nn.Sequential(ConvNormReLU(channels, inner, 1, norm), ConvNormReLU(inner, inner, 1, norm))
        self.query_project = nn.Sequential(ConvNormReLU(channels, inner, 1, norm),
                                           ConvNormReLU(inner, inner, 1, norm))
        self.value_project = nn.Conv2d(channels, channels, 1)
        self.output_project = ConvNormReLU(channels, channels, 1, norm)
        self.scale = inner ** -0.5
        self.impl = check_impl(impl)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, N)``: row i, query pixel i's softmax over the group's N pixels."""
        q, k = as_sequence(self.query_project(x)).float(), as_sequence(self.key_project(x)).float()
        return torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.scale, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = attend_all(self.query_project(x), self.key_project(x), self.value_project(x), x, self.scale, self.impl)
        return self.output_project(out)


class InterlacedRows:
    """ISA's two steps composed, ``(B, HW, HW)`` kept as the two steps' weights: ``rows[b, i]`` forms query i's row.

    ``long(b, i)`` and ``short(b, i)`` are the query's own steps alone: the pixels at its offset in every
    block, and its block.
    """

    def __init__(self, long_w: torch.Tensor, short_w: torch.Tensor, size, block, pad):
        self.long_w, self.short_w = long_w, short_w  # (B lh lw, G, G), (B gh gw, L, L)
        (self.h, self.w), (self.lh, self.lw), (self.top, self.left, ph, pw) = size, block, pad
        self.gh, self.gw = (self.h + ph) // self.lh, (self.w + pw) // self.lw
        self.shape = (long_w.shape[0] // (self.lh * self.lw), self.h * self.w, self.h * self.w)

    def _where(self, b: int, i: int):
        y, x = divmod(int(i), self.w)
        y, x = y + self.top, x + self.left
        (gy, oy), (gx, ox) = divmod(y, self.lh), divmod(x, self.lw)
        return (b * self.gh + gy) * self.gw + gx, oy * self.lw + ox, gy * self.gw + gx

    def _crop(self, padded: torch.Tensor) -> torch.Tensor:
        return padded[self.top:self.top + self.h, self.left:self.left + self.w].reshape(-1)

    def long(self, b: int, i: int) -> torch.Tensor:
        _, offset, cell = self._where(b, i)
        weights = self.long_w[b * self.lh * self.lw + offset, cell].reshape(self.gh, self.gw)
        padded = torch.zeros(self.gh, self.lh, self.gw, self.lw, dtype=weights.dtype)
        oy, ox = divmod(offset, self.lw)
        padded[:, oy, :, ox] = weights
        return self._crop(padded.reshape(self.gh * self.lh, self.gw * self.lw))

    def short(self, b: int, i: int) -> torch.Tensor:
        group, row, _ = self._where(b, i)
        block = self.short_w[group, row].reshape(self.lh, self.lw)
        padded = torch.zeros(self.gh, self.lh, self.gw, self.lw, dtype=block.dtype)
        gy, gx = divmod(group - b * self.gh * self.gw, self.gw)
        padded[gy, :, gx, :] = block
        return self._crop(padded.reshape(self.gh * self.lh, self.gw * self.lw))

    def __getitem__(self, key) -> torch.Tensor:
        b, i = key
        group, row, cell = self._where(b, i)
        short = self.short_w[group, row].reshape(self.lh, self.lw, 1, 1)  # over the offsets j of the block
        offsets = self.long_w[b * self.lh * self.lw:(b + 1) * self.lh * self.lw, cell]  # (lh lw, G): j's long step
        composed = short * offsets.reshape(self.lh, self.lw, self.gh, self.gw)
        return self._crop(composed.permute(2, 0, 3, 1).reshape(self.gh * self.lh, self.gw * self.lw))

    def dense(self) -> torch.Tensor:
        return torch.stack([torch.stack([self[b, i] for i in range(self.shape[1])]) for b in range(self.shape[0])])


@HEADS.register("isanet")
class ISAHead(DecodeHead):
    title = "ISANet"
    family = "self-attention"
    mmseg_type = "ISAHead"
    map_kinds = ("interlaced",)
    onnx_operators = frozenset({"Pad", "ConstantOfShape"})  # the zero padding to a multiple of the block

    def __init__(self, in_channels: int, channels: int, num_classes: int, isa_channels: int = 256,
                 down_factor=(8, 8), dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        down_factor = tuple(down_factor)
        if len(down_factor) != 2 or min(down_factor) < 1:
            raise ValueError(f"down_factor must be two block sizes >= 1 (height, width), got {list(down_factor)}")
        self.down_factor = down_factor
        self.in_conv = ConvNormReLU(in_channels, channels, norm=norm)
        self.global_relation = GroupSelfAttention(channels, isa_channels, norm)
        self.local_relation = GroupSelfAttention(channels, isa_channels, norm)
        self.out_conv = ConvNormReLU(2 * channels, channels, 1, norm)

    def _geometry(self, h, w):
        """Block, grid and padding (top, left, total height, total width) for an ``h x w`` map; integer
        arithmetic only, so an ONNX trace keeps it in terms of the input's size (an export with a dynamic size)."""
        lh, lw = self.down_factor
        gh, gw = (h + lh - 1) // lh, (w + lw - 1) // lw
        ph, pw = gh * lh - h, gw * lw - w
        return lh, lw, gh, gw, (ph // 2, pw // 2, ph, pw)

    def _regroup(self, x: torch.Tensor):
        """The padded map as long-range groups ``(B lh lw, C, gh, gw)`` (the same offset in every block)."""
        n, c, h, w = x.shape
        lh, lw, gh, gw, (top, left, ph, pw) = self._geometry(h, w)
        if torch.jit.is_tracing() or ph or pw:  # traced: whatever the size it is traced at
            x = F.pad(x, (left, pw - left, top, ph - top))
        return x.reshape(n, c, gh, lh, gw, lw).permute(0, 3, 5, 1, 2, 4).reshape(-1, c, gh, gw)

    def _short_groups(self, x: torch.Tensor, n: int):
        """Long-range groups back to short-range ones ``(B gh gw, C, lh, lw)`` (the pixels of each block)."""
        _, c, gh, gw = x.shape
        lh, lw = self.down_factor
        return x.reshape(n, lh, lw, c, gh, gw).permute(0, 4, 5, 3, 1, 2).reshape(-1, c, lh, lw)

    def forward(self, x: torch.Tensor) -> dict:
        residual = self.in_conv(x)
        n, c, h, w = residual.shape
        lh, lw, gh, gw, (top, left, _, _) = self._geometry(h, w)
        out = self.global_relation(self._regroup(residual))
        out = self.local_relation(self._short_groups(out, n))
        out = out.reshape(n, gh, gw, c, lh, lw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, gh * lh, gw * lw)
        out = out[:, :, top:top + h, left:left + w]
        return {"main": self.cls_seg(self.out_conv(torch.cat([out, residual], dim=1)))}

    def attention_maps(self, x: torch.Tensor) -> dict:
        residual = self.in_conv(x)
        n, _, h, w = residual.shape
        _, _, _, _, pad = self._geometry(h, w)
        grouped = self._regroup(residual)
        short_in = self._short_groups(self.global_relation(grouped), n)
        return {"interlaced": InterlacedRows(self.global_relation.weights(grouped),
                                             self.local_relation.weights(short_in), (h, w), self.down_factor, pad)}
