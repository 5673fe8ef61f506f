"""Memory-lean criss-cross attention for every device: keeps no attention tensor for backward.

Same contract as :func:`segattn.ops.reference.criss_cross_attention_reference`
(q, k ``(B, Cq, H, W)``, v ``(B, C, H, W)`` -> ``(B, C, H, W)``; each pixel
attends to its column and row, itself once). Where the reference lets autograd
keep the ``(B, H, W, H + W)`` weights and relaid copies of v, this op saves only
q, k, v and one float32 log-sum-exp per pixel, and recomputes the energies in
backward, as the fused Triton kernel (and FlashAttention) do.

Layout: the work is done channels-last, one image at a time on a CPU (the
whole batch on a GPU) and CHUNK channels of v at a time. Each chunk is relaid
once into a channels-last buffer ``(H, W, c)`` and, inside the cache, into a
column-layout one ``(W, H, c)``; the row and the column pass are then contiguous
batched matmuls into two more buffers, and one strided add writes their sum to
the output. The four buffers are allocated once per call and reused by every
chunk: glibc serves an allocation above 32 MiB with a fresh ``mmap`` each time,
and faulting in its zeroed pages costs far more than copying into memory
already touched, which the reference and the peers pay for several such
tensors a call. The output and the gradients are
returned channels-last (``(B, C, H, W)`` views of ``(B, H, W, C)`` storage, like
convolutions in ``torch.channels_last``); a caller that needs NCHW storage calls
``.contiguous()``, and a channels-last caller gets its inputs read without a
transposing copy.

The two energy blocks are never concatenated: one softmax spans them through a
shared per-pixel maximum and sum, and the column block's self entry is set to
-inf in place on its diagonal, so no mask is materialised.

Backward, with ``P`` the recomputed weights and ``dO`` the output gradient:
``dV = P^T dO``, ``dP = dO V^T``, ``D = rowsum(P * dP)`` (equal to ``dO . O``, so
the output need not be kept), ``dS = P (dP - D)``, ``dQ = dS K``, ``dK = dS^T Q``,
summed over the two passes.
"""
import torch

CHUNK = 64  # channels of v (and dO) a pass: the buffers stay cache-sized (32, 64, 128 timed within noise)


def as_channels_last(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W, C)`` contiguous (no copy when ``t`` is channels-last already)."""
    return t.permute(0, 2, 3, 1).contiguous()


def _columns(t: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> the column-major view ``(B, W, H, C)``, no copy."""
    return t.transpose(1, 2)


def _weights(qr, kr, lse=None):
    """Softmax weights ``P_col (B, W, H, H)`` and ``P_row (B, H, W, W)`` from channels-last q, k (float32,
    or float64 for float64 inputs), and the per-pixel log-sum-exp ``(B, H, W)``.

    With ``lse`` given (backward), it is reused instead of recomputed.
    """
    stats = torch.promote_types(qr.dtype, torch.float32)  # softmax statistics: float32 at least
    qc, kc = _columns(qr).contiguous(), _columns(kr).contiguous()  # Cq channels: small copies
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


class _ChunkBuffers:
    """``count`` buffers of ``(images, H, W, CHUNK)`` elements, allocated once and reused by every chunk.

    ``row(i, n)`` views buffer i as a contiguous ``(images, H, W, n)`` tensor,
    ``col(i, n)`` as a contiguous ``(images, W, H, n)`` one (the column layout).
    Allocating them once per call instead of once per chunk keeps their pages
    touched: a fresh allocation is zeroed and faulted in by the kernel, which
    costs more here than the copy into it (see the module docstring).
    """

    def __init__(self, count, like, images, h, w):
        self.shape = (images, h, w)
        self.flat = like.new_empty(count, images * h * w * CHUNK)

    def row(self, i, n):
        b, h, w = self.shape
        return self.flat[i, :b * h * w * n].view(b, h, w, n)

    def col(self, i, n):
        b, h, w = self.shape
        return self.flat[i, :b * h * w * n].view(b, w, h, n)


def _both_passes(p_col, p_row, vr, vc, tr, tc, out):
    """``out (B, H, W, n) = P_row V + P_col V`` from a channels-last chunk ``vr``.

    Both products are contiguous batched matmuls: ``vc`` gets the column layout
    of ``vr`` (a copy inside the cache), ``tr``/``tc`` take the two results, and one
    strided add writes them to ``out``.
    """
    torch.matmul(p_row, vr, out=tr)
    vc.copy_(_columns(vr))
    torch.matmul(p_col, vc, out=tc)
    torch.add(tr, _columns(tc), out=out)


def _images_per_pass(t: torch.Tensor) -> int:
    """1 on a CPU (one image's weights and buffers stay in the last-level cache together), the whole batch on a
    GPU (fewer, larger launches)."""
    return t.shape[0] if t.is_cuda else 1


def _chunks(b, c, images):
    """``(images slice, first channel, channels)`` of each pass, CHUNK channels at a time."""
    for i in range(0, b, images):
        for c0 in range(0, c, CHUNK):
            yield slice(i, i + images), c0, min(CHUNK, c - c0)


def _forward(q, k, v):
    p_col, p_row, lse = _weights(as_channels_last(q), as_channels_last(k))
    p_col, p_row = p_col.to(v.dtype), p_row.to(v.dtype)
    b, c, h, w = v.shape
    out = v.new_empty(b, h, w, c)
    images = _images_per_pass(v)
    buf = _ChunkBuffers(4, v, images, h, w)
    for i, c0, n in _chunks(b, c, images):
        vr = buf.row(0, n)
        vr.copy_(v[i, c0:c0 + n].permute(0, 2, 3, 1))
        _both_passes(p_col[i], p_row[i], vr, buf.col(1, n), buf.row(2, n), buf.col(3, n), out[i, ..., c0:c0 + n])
    return out.permute(0, 3, 1, 2), lse


def criss_cross_block_inference(x, query_conv, key_conv, value_conv, gamma):
    """``x + gamma * CCA(q(x), k(x), v(x))`` without autograd, holding v one channel chunk at a time.

    The CCNet module's inference path: q and k are dropped once the weights
    exist, and v is projected straight into channels-last chunks (the 1x1
    convolution as a matmul over x's pixels), so besides the weights and four
    chunk buffers it allocates only the output: a recurrent block's peak memory
    is about one feature map a loop. The result is channels-last.
    """
    q, k = query_conv(x), key_conv(x)
    p_col, p_row, _ = _weights(as_channels_last(q), as_channels_last(k))
    del q, k
    b, c, h, w = x.shape
    p_col, p_row = p_col.to(x.dtype), p_row.to(x.dtype)
    out = x.new_empty(b, h, w, value_conv.out_channels)
    pixels = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, HW, C): a view of channels-last x, else a copy
    # in x's dtype: under autocast x arrives in bf16 while the weights stay float32 (the convolution this
    # replaces would have cast them itself)
    weight = value_conv.weight.reshape(value_conv.out_channels, -1).to(x.dtype)
    bias = None if value_conv.bias is None else value_conv.bias.to(x.dtype)
    images = _images_per_pass(x)
    buf = _ChunkBuffers(4, x, images, h, w)
    for i, c0, n in _chunks(b, value_conv.out_channels, images):
        vr = buf.row(0, n)
        torch.matmul(pixels[i], weight[c0:c0 + n].t(), out=vr.view(-1, h * w, n))
        if bias is not None:
            vr += bias[c0:c0 + n]
        _both_passes(p_col[i], p_row[i], vr, buf.col(1, n), buf.row(2, n), buf.col(3, n), out[i, ..., c0:c0 + n])
    return out.permute(0, 3, 1, 2).mul_(gamma).add_(x)


def _accumulate(acc, a, bt):
    """``acc (N, L, L) += a (N, L, n) @ bt (N, n, L)``, in acc's dtype (float32 statistics for 16-bit inputs)."""
    if a.dtype == acc.dtype:
        acc.baddbmm_(a, bt)
    else:
        acc.add_(torch.bmm(a, bt).to(acc.dtype))


def _backward(q, k, v, lse, grad_out):
    qr, kr = as_channels_last(q), as_channels_last(k)
    p_col, p_row, _ = _weights(qr, kr, lse)
    pc_t, pr_t = p_col.transpose(-1, -2).to(v.dtype), p_row.transpose(-1, -2).to(v.dtype)
    dp_col, dp_row = torch.zeros_like(p_col), torch.zeros_like(p_row)  # dO V^T, summed over value chunks
    b, c, h, w = v.shape
    dv = v.new_empty(b, h, w, c)
    grad_out = grad_out.to(v.dtype)
    images = _images_per_pass(v)
    buf = _ChunkBuffers(6, v, images, h, w)
    for i, c0, n in _chunks(b, c, images):
        vr, gr, vc, gc = buf.row(0, n), buf.row(1, n), buf.col(2, n), buf.col(3, n)
        vr.copy_(v[i, c0:c0 + n].permute(0, 2, 3, 1))
        gr.copy_(grad_out[i, c0:c0 + n].permute(0, 2, 3, 1))
        _both_passes(pc_t[i], pr_t[i], gr, gc, buf.row(4, n), buf.col(5, n), dv[i, ..., c0:c0 + n])  # dV = P^T dO
        vc.copy_(_columns(vr))
        _accumulate(dp_row[i].flatten(0, 1), gr.flatten(0, 1), vr.flatten(0, 1).transpose(1, 2))
        _accumulate(dp_col[i].flatten(0, 1), gc.flatten(0, 1), vc.flatten(0, 1).transpose(1, 2))
    delta = (p_col * dp_col).sum(-1).transpose(1, 2) + (p_row * dp_row).sum(-1)  # (B, H, W) = dO . O
    ds_col = p_col.mul_(dp_col.sub_(delta.transpose(1, 2)[..., None])).to(q.dtype)  # in place: P is done
    ds_row = p_row.mul_(dp_row.sub_(delta[..., None])).to(q.dtype)
    dq = torch.matmul(ds_row, kr)  # (B, H, W, Cq)
    _columns(dq).add_(torch.matmul(ds_col, _columns(kr)))
    dk = torch.matmul(ds_row.transpose(-1, -2), qr)
    _columns(dk).add_(torch.matmul(ds_col.transpose(-1, -2), _columns(qr)))
    return dq.permute(0, 3, 1, 2), dk.permute(0, 3, 1, 2), dv.permute(0, 3, 1, 2)


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
    The result is channels-last (see the module docstring).
    """
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    return LeanCrissCrossFunction.apply(q.to(dtype), k.to(dtype), v.to(dtype))
