"""Memory-lean criss-cross attention for every device: keeps no attention tensor for backward.

Same contract as :func:`segattn.ops.reference.criss_cross_attention_reference`
(q, k ``(B, Cq, H, W)``, v ``(B, C, H, W)`` -> ``(B, C, H, W)``; each pixel
attends to its column and row, itself once). Where the reference lets autograd
keep the ``(B, H, W, H + W)`` weights and relaid copies of v, this op saves only
q, k, v and one float32 log-sum-exp per pixel, and recomputes the energies in
backward, as the fused Triton kernel (and FlashAttention) do.

Both passes are batched matmuls over contiguous layouts: the column pass in
``(B, W, H, .)``, the row pass in ``(B, H, W, .)``. The two energy blocks are
never concatenated: one softmax spans them through a shared per-pixel maximum
and sum, and the column block's self entry is set to -inf in place on its
diagonal, so no mask is materialised.

Backward, with ``P`` the recomputed weights and ``dO`` the output gradient:
``dV = P^T dO``, ``dP = dO V^T``, ``D = rowsum(P * dP)`` (equal to ``dO . O``, so
the output need not be kept), ``dS = P (dP - D)``, ``dQ = dS K``, ``dK = dS^T Q``,
summed over the two passes.
"""
import torch


def _layouts(t: torch.Tensor):
    """``(B, C, H, W)`` -> column layout ``(B, W, H, C)`` and row layout ``(B, H, W, C)``, contiguous."""
    return t.permute(0, 3, 2, 1).contiguous(), t.permute(0, 2, 3, 1).contiguous()


def _weights(qc, qr, kc, kr, lse=None):
    """Softmax weights ``P_col (B, W, H, H)`` and ``P_row (B, H, W, W)`` (float32, or float64 for float64
    inputs), and the per-pixel log-sum-exp.

    With ``lse`` given (backward), it is reused instead of recomputed.
    """
    stats = torch.promote_types(qc.dtype, torch.float32)  # softmax statistics: float32 at least
    e_col = torch.matmul(qc, kc.transpose(-1, -2)).to(stats)  # [b, w, h, h']
    e_col.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))  # the pixel itself is counted in its row
    e_row = torch.matmul(qr, kr.transpose(-1, -2)).to(stats)  # [b, h, w, w']
    if lse is None:  # exp(e - max) in place, normalised by the shared sum: no temporary of either block
        m = torch.maximum(e_col.amax(-1).transpose(1, 2), e_row.amax(-1))  # (B, H, W)
        e_col.sub_(m.transpose(1, 2)[..., None]).exp_()
        e_row.sub_(m[..., None]).exp_()
        total = e_col.sum(-1).transpose(1, 2) + e_row.sum(-1)
        e_col.div_(total.transpose(1, 2)[..., None])
        e_row.div_(total[..., None])
        return e_col, e_row, m + torch.log(total)
    e_col.sub_(lse.transpose(1, 2)[..., None]).exp_()
    e_row.sub_(lse[..., None]).exp_()
    return e_col, e_row, lse


CHUNK = 64  # value channels a pass: their relaid copies stay cache-sized (fastest of 64-512 at 97 x 97)
PROJECTION_CHUNK = 128  # channels of v projected at once without autograd: one pass over x each


def _attend(p_col, p_row, v, out):
    """``out (B, C, H, W) = P_col V + P_row V``, written in chunks of value channels."""
    p_col, p_row = p_col.to(v.dtype), p_row.to(v.dtype)
    for c0 in range(0, v.shape[1], CHUNK):
        vc, vr = _layouts(v[:, c0:c0 + CHUNK])
        chunk = out[:, c0:c0 + CHUNK]
        chunk.copy_(torch.matmul(p_row, vr).permute(0, 3, 1, 2))
        chunk.add_(torch.matmul(p_col, vc).permute(0, 3, 2, 1))
    return out


def _forward(q, k, v):
    (qc, qr), (kc, kr) = _layouts(q), _layouts(k)
    p_col, p_row, lse = _weights(qc, qr, kc, kr)
    return _attend(p_col, p_row, v, torch.empty_like(v, memory_format=torch.contiguous_format)), lse


def criss_cross_block_inference(x, query_conv, key_conv, value_conv, gamma):
    """``x + gamma * CCA(q(x), k(x), v(x))`` without autograd, holding v one channel chunk at a time.

    The CCNet module's inference path: q and k are dropped once the
    ``(B, H, W, H + W)`` weights exist, and besides them it allocates only the
    output, so a recurrent block's peak memory is about one feature map a loop.
    """
    q, k = query_conv(x), key_conv(x)
    p_col, p_row, _ = _weights(*_layouts(q), *_layouts(k))
    del q, k
    b, c, h, w = x.shape
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    pixels = x.reshape(b, c, h * w)  # the 1x1 convolution as a matmul reads x as it is, with no relaid copy
    weight = value_conv.weight.reshape(value_conv.out_channels, -1)
    for c0 in range(0, value_conv.out_channels, PROJECTION_CHUNK):
        c1 = c0 + PROJECTION_CHUNK
        v = torch.matmul(weight[c0:c1], pixels)
        if value_conv.bias is not None:
            v += value_conv.bias[c0:c1, None]
        _attend(p_col, p_row, v.view(b, -1, h, w), out[:, c0:c1])
    return out.mul_(gamma).add_(x)


def _backward(q, k, v, lse, grad_out):
    (qc, qr), (kc, kr) = _layouts(q), _layouts(k)
    p_col, p_row, _ = _weights(qc, qr, kc, kr, lse)
    pc_t, pr_t = p_col.transpose(-1, -2).to(v.dtype), p_row.transpose(-1, -2).to(v.dtype)
    dp_col, dp_row = torch.zeros_like(p_col), torch.zeros_like(p_row)  # dO V^T, summed over value chunks
    dv = torch.empty_like(v, memory_format=torch.contiguous_format)
    grad_out = grad_out.to(v.dtype)
    for c0 in range(0, v.shape[1], CHUNK):
        (vc, vr), (gc, gr) = _layouts(v[:, c0:c0 + CHUNK]), _layouts(grad_out[:, c0:c0 + CHUNK])
        chunk = dv[:, c0:c0 + CHUNK]
        chunk.copy_(torch.matmul(pr_t, gr).permute(0, 3, 1, 2))  # dV = P^T dO, row then column
        chunk.add_(torch.matmul(pc_t, gc).permute(0, 3, 2, 1))
        dp_col.add_(torch.matmul(gc, vc.transpose(-1, -2)))
        dp_row.add_(torch.matmul(gr, vr.transpose(-1, -2)))
    delta = (p_col * dp_col).sum(-1).transpose(1, 2) + (p_row * dp_row).sum(-1)  # (B, H, W) = dO . O
    ds_col = p_col.mul_(dp_col.sub_(delta.transpose(1, 2)[..., None])).to(q.dtype)  # in place: P is done
    ds_row = p_row.mul_(dp_row.sub_(delta[..., None])).to(q.dtype)
    dq = torch.matmul(ds_col, kc).permute(0, 3, 2, 1) + torch.matmul(ds_row, kr).permute(0, 3, 1, 2)
    dk = (torch.matmul(ds_col.transpose(-1, -2), qc).permute(0, 3, 2, 1)
          + torch.matmul(ds_row.transpose(-1, -2), qr).permute(0, 3, 1, 2))
    return dq.contiguous(), dk.contiguous(), dv


class LeanCrissCrossFunction(torch.autograd.Function):
    """Saves q, k, v and the per-pixel log-sum-exp; recomputes the weights in backward."""

    @staticmethod
    def forward(ctx, q, k, v):
        out, lse = _forward(q, k, v)
        ctx.save_for_backward(q, k, v, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, lse = ctx.saved_tensors
        return _backward(q, k, v, lse, grad_out)


def criss_cross_attention_lean(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Criss-cross attention that keeps only q, k, v and ``(B, H, W)`` statistics for backward.

    Mixed input dtypes (as autocast can produce) are promoted to a common one.
    """
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    return LeanCrissCrossFunction.apply(q.to(dtype), k.to(dtype), v.to(dtype))
