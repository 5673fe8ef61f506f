"""Pure-PyTorch reference of criss-cross attention (CCNet, Huang et al., ICCV 2019, Sec. 3.2).

Every pixel (h, w) attends to the H pixels of its column and the W pixels of its
row; the pixel itself appears in both and is counted once (the column copy is
masked), so each pixel sees H + W - 1 positions under one softmax.

Shapes: q, k ``(B, Cq, H, W)``, v ``(B, C, H, W)`` -> out ``(B, C, H, W)``.

Written as batched matmuls over permuted views so it runs on any device and
autograd differentiates it; it stores the (B, H, W, H + W) attention tensor,
which is what the fused kernel avoids.
"""
import torch


def criss_cross_energies(q: torch.Tensor, k: torch.Tensor):
    """Column and row energies, column self-position set to -inf.

    Returns ``(e_col, e_row)`` of shapes ``(B, H, W, H)`` and ``(B, H, W, W)``,
    indexed ``[b, h, w, position]``.
    """
    _, _, h, _ = q.shape
    # column: e_col[b, w, h, h'] = <q[b, :, h, w], k[b, :, h', w]>
    e_col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2))
    rows = torch.arange(h, device=q.device)  # not torch.eye: arange and == export to ONNX with a dynamic H
    e_col = e_col.masked_fill(rows[:, None] == rows[None, :], float("-inf")).permute(0, 2, 1, 3)
    # row: e_row[b, h, w, w'] = <q[b, :, h, w], k[b, :, h, w']>
    e_row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))
    return e_col, e_row


def criss_cross_attention_maps(q: torch.Tensor, k: torch.Tensor):
    """Softmax weights over the H + W criss-cross positions, ``(B, H, W, H + W)``.

    The first H entries are the column (the self entry is exactly 0), the last W
    the row. Used by the op and by attention visualisation.
    """
    e_col, e_row = criss_cross_energies(q, k)
    energy = torch.cat([e_col, e_row], dim=-1)
    if energy.dtype in (torch.float16, torch.bfloat16):
        # softmax statistics in float32, as the fused kernel keeps them
        return torch.softmax(energy.float(), dim=-1).to(q.dtype)
    return torch.softmax(energy, dim=-1)


def criss_cross_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Reference criss-cross attention; see the module docstring for semantics."""
    h = q.shape[2]
    attn = criss_cross_attention_maps(q, k).to(v.dtype)
    a_col, a_row = attn[..., :h], attn[..., h:]
    # out_col[b, w, h, c] = sum_h' a_col[b, h, w, h'] v[b, c, h', w]
    out_col = torch.matmul(a_col.permute(0, 2, 1, 3), v.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
    # out_row[b, h, w, c] = sum_w' a_row[b, h, w, w'] v[b, c, h, w']
    out_row = torch.matmul(a_row, v.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return out_col + out_row
