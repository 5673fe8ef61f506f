"""Fused criss-cross attention in Triton: forward and backward, flash-style.

Same semantics and signature as :func:`segattn.ops.reference.criss_cross_attention_reference`.

Design. A pixel's H + W - 1 positions split into two *lines*: its column and its
row. Within one line, queries and keys lie on the same line, so each line is a
small dense attention problem that ``tl.dot`` handles on tensor cores. One
kernel serves both directions through strides: the column pass (line = a
column, positions strided by W, the query's own position masked) runs first and
writes its normalised output and log-sum-exp; the row pass (positions
contiguous) then merges its own result into the same buffer with the exact
log-sum-exp rule, so the output is one softmax over H + W - 1 positions.

Only the per-pixel log-sum-exp ``(B, H, W)`` is kept for backward; energies are
recomputed there. No (B, H, W, H + W) attention tensor and no permuted copy of
q, k or v is ever made: kernels read the (B, C, H, W) tensors in place.

Backward per line pass: ``dq`` (query-major), ``dk`` (key-major) and ``dv``
(key-major, tiled over C), after one pass that computes ``D = rowsum(dO * O)``.
Channels are tiled by ``BLOCK_C``; energies are recomputed for each channel
tile, which costs ``Cq / BLOCK_C`` extra work and keeps registers bounded.
Accumulation is float32 for every input dtype; float32 inputs use IEEE
products unless ``torch.backends.cuda.matmul.allow_tf32`` is set, as torch does.
"""
import os

import torch
import triton
import triton.language as tl

from ..errors import ConfigError

MAX_QK_CHANNELS = 256  # q/k channels held in one register tile
# ... and in float32 at most 128: with 256 the sm_90 compiler plans 278784 B of shared memory for the forward,
# past the 232448 B an H100 block may use (tests/ops/aot_compile.py compiles the largest plan of each dtype)
MAX_QK_CHANNELS_FP32 = 128
SHARED_MEMORY_LIMIT = 232448  # bytes per block on sm_90 (H100), with the opt-in carve-out


def max_qk_channels(dtype: torch.dtype) -> int:
    return MAX_QK_CHANNELS_FP32 if dtype == torch.float32 else MAX_QK_CHANNELS

# Largest tiles: positions along a line, value channels in forward and backward.
# Sized for a GPU's registers; the CPU interpreter runs faster with larger ones
# (tests raise them), since its cost is per program and per loop step.
MAX_BLOCKS = {"line": 64, "c_fwd": 128, "c_bwd": 64}


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    """a @ b with float32 accumulation.

    PRECISION "upcast" multiplies in float32 IEEE after exact widening: the same
    products as bf16 tensor cores, used where the interpreter's bf16 dot is wrong.
    """
    if PRECISION == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def _energies(q, k_ptrs, kmask, kpos, qpos, qvalid, L, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr):
    """S = q @ k^T for one key block, invalid and (optionally) self positions at -inf."""
    kt = tl.load(k_ptrs, mask=kmask, other=0.0)
    s = _dot(q, kt, PRECISION)
    ok = qvalid[:, None] & (kpos[None, :] < L)
    if MASK_SELF:
        ok = ok & (qpos[:, None] != kpos[None, :])
    return tl.where(ok, s, float("-inf"))


@triton.jit
def _fwd_line_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_in_ptr, lse_ptr,
    CQ, C, L, line_stride, pos_stride, HW,
    N_CBLOCKS,
    FIRST: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    line = tl.program_id(0)
    qblock = tl.program_id(1)
    b = tl.program_id(2) // N_CBLOCKS
    cblock = tl.program_id(2) % N_CBLOCKS

    qpos = qblock * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qvalid = qpos < L
    cq = tl.arange(0, BLOCK_CQ)
    cv = cblock * BLOCK_C + tl.arange(0, BLOCK_C)
    base = line.to(tl.int64) * line_stride
    q_base = q_ptr + b.to(tl.int64) * CQ * HW + base
    k_base = k_ptr + b.to(tl.int64) * CQ * HW + base
    v_base = v_ptr + b.to(tl.int64) * C * HW + base

    q = tl.load(q_base + qpos[:, None] * pos_stride + cq[None, :] * HW,
                mask=qvalid[:, None] & (cq[None, :] < CQ), other=0.0)
    m = tl.full([BLOCK_Q], float("-inf"), tl.float32)
    l_sum = tl.zeros([BLOCK_Q], tl.float32)
    acc = tl.zeros([BLOCK_Q, BLOCK_C], tl.float32)
    for k0 in range(0, L, BLOCK_K):
        kpos = k0 + tl.arange(0, BLOCK_K)
        s = _energies(q, k_base + cq[:, None] * HW + kpos[None, :] * pos_stride,
                      (cq[:, None] < CQ) & (kpos[None, :] < L), kpos, qpos, qvalid, L, MASK_SELF, PRECISION)
        m_new = tl.maximum(m, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m - m_safe)
        l_sum = l_sum * alpha + tl.sum(p, 1)
        vt = tl.load(v_base + kpos[:, None] * pos_stride + cv[None, :] * HW,
                     mask=(kpos[:, None] < L) & (cv[None, :] < C), other=0.0)
        acc = acc * alpha[:, None] + _dot(p.to(vt.dtype), vt, PRECISION)
        m = m_new

    # a line that holds only the query itself (column of height 1) has no positions
    has = l_sum > 0
    lse_line = tl.where(has, m + tl.log(tl.where(has, l_sum, 1.0)), float("-inf"))
    o_line = acc / tl.where(has, l_sum, 1.0)[:, None]
    pix = b.to(tl.int64) * HW + base + qpos * pos_stride
    o_ptrs = out_ptr + b.to(tl.int64) * C * HW + base + qpos[:, None] * pos_stride + cv[None, :] * HW
    omask = qvalid[:, None] & (cv[None, :] < C)
    if FIRST:
        tl.store(o_ptrs, o_line, mask=omask)
        lse = lse_line
    else:
        # the column pass's lse comes from its own buffer: other channel tiles of
        # this pass write the merged lse, and must not see each other's writes
        lse_prev = tl.load(lse_in_ptr + pix, mask=qvalid, other=0.0)
        lse = tl.maximum(lse_prev, lse_line)
        lse = lse + tl.log(tl.exp(lse_prev - lse) + tl.exp(lse_line - lse))
        o_prev = tl.load(o_ptrs, mask=omask, other=0.0).to(tl.float32)
        o = o_prev * tl.exp(lse_prev - lse)[:, None] + o_line * tl.exp(lse_line - lse)[:, None]
        tl.store(o_ptrs, o, mask=omask)
    if cblock == 0:
        tl.store(lse_ptr + pix, lse, mask=qvalid)


@triton.jit
def _bwd_delta_kernel(do_ptr, o_ptr, delta_ptr, C, HW, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """D[b, pixel] = sum_c dO * O, the softmax-backward row term."""
    b = tl.program_id(1)
    pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    acc = tl.zeros([BLOCK_P], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        offs = b.to(tl.int64) * C * HW + c[None, :] * HW + pix[:, None]
        mask = (pix[:, None] < HW) & (c[None, :] < C)
        do = tl.load(do_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        o = tl.load(o_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        acc += tl.sum(do * o, 1)
    tl.store(delta_ptr + b.to(tl.int64) * HW + pix, acc, mask=pix < HW)


@triton.jit
def _dp_block(do_base, v_base, qpos, kpos, qvalid, C, L, pos_stride, HW,
              PRECISION: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr):
    """dP = dO_q @ v_k^T over all C channels, (BLOCK_Q, BLOCK_K)."""
    dp = tl.zeros([BLOCK_Q, BLOCK_K], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        do = tl.load(do_base + qpos[:, None] * pos_stride + c[None, :] * HW,
                     mask=qvalid[:, None] & (c[None, :] < C), other=0.0)
        vt = tl.load(v_base + c[:, None] * HW + kpos[None, :] * pos_stride,
                     mask=(c[:, None] < C) & (kpos[None, :] < L), other=0.0)
        dp += _dot(do, vt.to(do.dtype), PRECISION)
    return dp


@triton.jit
def _bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    CQ, C, L, line_stride, pos_stride, HW,
    ACCUM: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    line = tl.program_id(0)
    qpos = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    b = tl.program_id(2)
    qvalid = qpos < L
    cq = tl.arange(0, BLOCK_CQ)
    base = line.to(tl.int64) * line_stride
    qk_off = b.to(tl.int64) * CQ * HW + base
    cv_off = b.to(tl.int64) * C * HW + base
    pix = b.to(tl.int64) * HW + base + qpos * pos_stride

    qmask = qvalid[:, None] & (cq[None, :] < CQ)
    q = tl.load(q_ptr + qk_off + qpos[:, None] * pos_stride + cq[None, :] * HW, mask=qmask, other=0.0)
    lse = tl.load(lse_ptr + pix, mask=qvalid, other=0.0)
    delta = tl.load(delta_ptr + pix, mask=qvalid, other=0.0)
    dq = tl.zeros([BLOCK_Q, BLOCK_CQ], tl.float32)
    for k0 in range(0, L, BLOCK_K):
        kpos = k0 + tl.arange(0, BLOCK_K)
        s = _energies(q, k_ptr + qk_off + cq[:, None] * HW + kpos[None, :] * pos_stride,
                      (cq[:, None] < CQ) & (kpos[None, :] < L), kpos, qpos, qvalid, L, MASK_SELF, PRECISION)
        p = tl.exp(s - lse[:, None])
        dp = _dp_block(do_ptr + cv_off, v_ptr + cv_off, qpos, kpos, qvalid, C, L, pos_stride, HW,
                       PRECISION, BLOCK_C, BLOCK_Q, BLOCK_K)
        ds = p * (dp - delta[:, None])
        k = tl.load(k_ptr + qk_off + kpos[:, None] * pos_stride + cq[None, :] * HW,
                    mask=(kpos[:, None] < L) & (cq[None, :] < CQ), other=0.0)
        dq += _dot(ds.to(k.dtype), k, PRECISION)
    ptrs = dq_ptr + qk_off + qpos[:, None] * pos_stride + cq[None, :] * HW
    if ACCUM:
        dq += tl.load(ptrs, mask=qmask, other=0.0)
    tl.store(ptrs, dq, mask=qmask)


@triton.jit
def _bwd_dk_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr,
    CQ, C, L, line_stride, pos_stride, HW,
    ACCUM: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    line = tl.program_id(0)
    kpos = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    b = tl.program_id(2)
    kvalid = kpos < L
    cq = tl.arange(0, BLOCK_CQ)
    base = line.to(tl.int64) * line_stride
    qk_off = b.to(tl.int64) * CQ * HW + base
    cv_off = b.to(tl.int64) * C * HW + base
    pix_base = b.to(tl.int64) * HW + base

    kmask = kvalid[:, None] & (cq[None, :] < CQ)
    dk = tl.zeros([BLOCK_K, BLOCK_CQ], tl.float32)
    for q0 in range(0, L, BLOCK_Q):
        qpos = q0 + tl.arange(0, BLOCK_Q)
        qvalid = qpos < L
        q = tl.load(q_ptr + qk_off + qpos[:, None] * pos_stride + cq[None, :] * HW,
                    mask=qvalid[:, None] & (cq[None, :] < CQ), other=0.0)
        lse = tl.load(lse_ptr + pix_base + qpos * pos_stride, mask=qvalid, other=0.0)
        delta = tl.load(delta_ptr + pix_base + qpos * pos_stride, mask=qvalid, other=0.0)
        s = _energies(q, k_ptr + qk_off + cq[:, None] * HW + kpos[None, :] * pos_stride,
                      (cq[:, None] < CQ) & kvalid[None, :], kpos, qpos, qvalid, L, MASK_SELF, PRECISION)
        p = tl.exp(s - lse[:, None])
        dp = _dp_block(do_ptr + cv_off, v_ptr + cv_off, qpos, kpos, qvalid, C, L, pos_stride, HW,
                       PRECISION, BLOCK_C, BLOCK_Q, BLOCK_K)
        ds = p * (dp - delta[:, None])
        dk += _dot(tl.trans(ds).to(q.dtype), q, PRECISION)
    ptrs = dk_ptr + qk_off + kpos[:, None] * pos_stride + cq[None, :] * HW
    if ACCUM:
        dk += tl.load(ptrs, mask=kmask, other=0.0)
    tl.store(ptrs, dk, mask=kmask)


@triton.jit
def _bwd_dv_kernel(
    q_ptr, k_ptr, do_ptr, lse_ptr, dv_ptr,
    CQ, C, L, line_stride, pos_stride, HW,
    N_CBLOCKS,
    ACCUM: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    line = tl.program_id(0)
    kpos = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    b = tl.program_id(2) // N_CBLOCKS
    cv = (tl.program_id(2) % N_CBLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    kvalid = kpos < L
    cq = tl.arange(0, BLOCK_CQ)
    base = line.to(tl.int64) * line_stride
    qk_off = b.to(tl.int64) * CQ * HW + base
    cv_off = b.to(tl.int64) * C * HW + base
    pix_base = b.to(tl.int64) * HW + base

    dv = tl.zeros([BLOCK_K, BLOCK_C], tl.float32)
    for q0 in range(0, L, BLOCK_Q):
        qpos = q0 + tl.arange(0, BLOCK_Q)
        qvalid = qpos < L
        q = tl.load(q_ptr + qk_off + qpos[:, None] * pos_stride + cq[None, :] * HW,
                    mask=qvalid[:, None] & (cq[None, :] < CQ), other=0.0)
        lse = tl.load(lse_ptr + pix_base + qpos * pos_stride, mask=qvalid, other=0.0)
        s = _energies(q, k_ptr + qk_off + cq[:, None] * HW + kpos[None, :] * pos_stride,
                      (cq[:, None] < CQ) & kvalid[None, :], kpos, qpos, qvalid, L, MASK_SELF, PRECISION)
        p = tl.exp(s - lse[:, None])
        do = tl.load(do_ptr + cv_off + qpos[:, None] * pos_stride + cv[None, :] * HW,
                     mask=qvalid[:, None] & (cv[None, :] < C), other=0.0)
        dv += _dot(tl.trans(p).to(do.dtype), do, PRECISION)
    vmask = kvalid[:, None] & (cv[None, :] < C)
    ptrs = dv_ptr + cv_off + kpos[:, None] * pos_stride + cv[None, :] * HW
    if ACCUM:
        dv += tl.load(ptrs, mask=vmask, other=0.0)
    tl.store(ptrs, dv, mask=vmask)


# ----------------------------------------------------------------------------- host side

def _pow2(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(max(1, n))))


def _lines(h: int, w: int):
    """(L, n_lines, line_stride, pos_stride, mask_self) per pass: the column pass first, then the row pass."""
    return ((h, w, 1, w, True), (w, h, w, 1, False))


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    if dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        return "upcast"  # the CPU interpreter's bf16 tl.dot returns garbage (Triton 3.x)
    return "tf32"


def _forward(q, k, v):
    b, cq, h, w = q.shape
    c = v.shape[1]
    out = torch.empty((b, c, h, w), device=q.device, dtype=torch.float32)
    lse_col = torch.empty((b, h, w), device=q.device, dtype=torch.float32)
    lse = torch.empty((b, h, w), device=q.device, dtype=torch.float32)
    block_c = _pow2(c, 16, MAX_BLOCKS["c_fwd"])
    n_cblocks = triton.cdiv(c, block_c)
    for i, (length, n_lines, line_stride, pos_stride, mask_self) in enumerate(_lines(h, w)):
        block = _pow2(length, 16, MAX_BLOCKS["line"])
        grid = (n_lines, triton.cdiv(length, block), b * n_cblocks)
        _fwd_line_kernel[grid](
            q, k, v, out, lse_col, lse_col if i == 0 else lse, cq, c, length, line_stride, pos_stride, h * w, n_cblocks,
            FIRST=i == 0, MASK_SELF=mask_self, PRECISION=_precision(q.dtype),
            BLOCK_Q=block, BLOCK_K=block, BLOCK_CQ=_pow2(cq, 16, MAX_QK_CHANNELS), BLOCK_C=block_c,
        )
    return out, lse


def _backward(q, k, v, out, lse, grad_out):
    b, cq, h, w = q.shape
    c = v.shape[1]
    hw = h * w
    delta = torch.empty((b, h, w), device=q.device, dtype=torch.float32)
    _bwd_delta_kernel[(triton.cdiv(hw, 64), b)](grad_out, out, delta, c, hw, BLOCK_P=64,
                                               BLOCK_C=_pow2(c, 16, MAX_BLOCKS["c_bwd"]))
    dq = torch.empty(q.shape, device=q.device, dtype=torch.float32)
    dk = torch.empty(k.shape, device=q.device, dtype=torch.float32)
    dv = torch.empty(v.shape, device=q.device, dtype=torch.float32)
    block_cq = _pow2(cq, 16, MAX_QK_CHANNELS)
    block_c = _pow2(c, 16, MAX_BLOCKS["c_bwd"])
    n_cblocks = triton.cdiv(c, block_c)
    precision = _precision(q.dtype)
    for i, (length, n_lines, line_stride, pos_stride, mask_self) in enumerate(_lines(h, w)):
        block = _pow2(length, 16, MAX_BLOCKS["line"])
        n_blocks = triton.cdiv(length, block)
        geometry = (cq, c, length, line_stride, pos_stride, hw)
        meta = dict(ACCUM=i > 0, MASK_SELF=mask_self, PRECISION=precision, BLOCK_Q=block, BLOCK_K=block,
                    BLOCK_CQ=block_cq, BLOCK_C=block_c)
        _bwd_dq_kernel[(n_lines, n_blocks, b)](q, k, v, grad_out, lse, delta, dq, *geometry, **meta)
        _bwd_dk_kernel[(n_lines, n_blocks, b)](q, k, v, grad_out, lse, delta, dk, *geometry, **meta)
        _bwd_dv_kernel[(n_lines, n_blocks, b * n_cblocks)](q, k, grad_out, lse, dv, *geometry, n_cblocks, **meta)
    return dq, dk, dv


class CrissCrossAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, the output and the per-pixel log-sum-exp."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, q, k, v):
        dtype = q.dtype
        q, k, v = (t.contiguous() for t in (q, k, v))
        out, lse = _forward(q, k, v)
        out = out.to(dtype)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, grad_out.contiguous().to(q.dtype))
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def check_supported(q: torch.Tensor):
    """Raise ConfigError (a ValueError) when the kernel cannot take these inputs."""
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ConfigError(f"the Triton criss-cross kernel takes float32/float16/bfloat16, got {q.dtype}")
    limit = max_qk_channels(q.dtype)
    if q.shape[1] > limit:
        raise ConfigError(f"the Triton criss-cross kernel takes at most {limit} q/k channels in "
                          f"{str(q.dtype).replace('torch.', '')}, got {q.shape[1]} (the automatic dispatch uses "
                          "the lean PyTorch op for these)")


def supported(q: torch.Tensor) -> bool:
    try:
        check_supported(q)
    except ValueError:
        return False
    return True


def criss_cross_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Fused criss-cross attention; same contract as the reference.

    Mixed input dtypes (as autocast can produce) are promoted to a common one.
    """
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    check_supported(q)
    return CrissCrossAttentionFunction.apply(q, k, v)
