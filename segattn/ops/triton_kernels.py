"""Fused criss-cross attention in Triton: forward and backward, flash-style.

Same semantics and signature as :func:`segattn.ops.reference.criss_cross_attention_reference`.

Design. A pixel's H + W - 1 positions split into two *lines*: its column and its
row. Within one line, queries and keys lie on the same line, so each line is a
small dense attention problem that ``tl.dot`` handles on tensor cores. One
kernel serves both directions through strides: the column pass (line = a
column, the query's own position masked) runs first and writes its normalised
output and log-sum-exp; the row pass then merges its own result into the same
buffer with the exact log-sum-exp rule, so the output is one softmax over
H + W - 1 positions.

Layout. Kernels read and write channels-last tensors ``(B, H, W, C)``: a tile
of positions x channels is contiguous along channels in both passes, so every
load is coalesced (in NCHW the column pass would touch one 32-byte sector per
element). Inputs in NCHW are copied once; a model run in channels_last passes
them through as they are. Offsets are int64: no overflow at any size.

Forward keeps only the per-pixel log-sum-exp ``(B, H, W)`` for backward. The
output is written in the input dtype (no float32 copy, no conversion pass).

Backward, per line pass: a query-major kernel recomputes the energies once,
forms ``dP = dO v^T`` once, writes the softmax ``P`` and ``dS = P (dP - D)``
to a workspace of ``(B, lines, L, L)`` in the input dtype (the precision the
tensor cores take them in anyway) and accumulates ``dq``; key-major kernels
then read that workspace for ``dk = dS^T q`` and ``dv = P^T dO``. Each product
of the gradient is so computed once (``accounting``). ``D = rowsum(dO * O)``
comes from a first elementwise kernel.

Precision. Accumulation is float32 for every input dtype. float32 inputs run on
tensor cores as TF32, so the kernel takes them only where torch would
(``torch.backends.cuda.matmul.allow_tf32``); in IEEE float32 Triton's dot runs
on CUDA cores and spills registers, far slower than the reference, so the
dispatch uses the lean PyTorch op instead. TF32 is an opt-in for memory, not
speed (docs/criss_cross.md).
"""
import os

import torch
import triton
import triton.language as tl

from ..errors import ConfigError
from .lean import as_channels_last

SHARED_MEMORY_LIMIT = 232448  # bytes per block on sm_90 (H100), with the opt-in carve-out

# Largest tiles per precision and q/k width: fwd_q / fwd_k positions per query and
# key block in forward, fwd_c value channels; query_q / query_k the blocks of the
# backward query kernel (it holds four (query, key) tiles at once), key the
# blocks of the key kernels, bwd_c their channel tile. A shorter line or fewer
# channels take the next power of two (at least 16). Each row is the largest
# that the sm_90 compiler fits without register spills at 8 warps and within
# shared memory (tests/ops/aot_compile.py checks every plan, ptxas -v). Tests
# shrink or grow them to exercise multi-tile loops on the CPU interpreter.
TILES = {
    "16bit": [  # (largest q/k channels, tiles)
        (64, dict(fwd_q=64, fwd_k=64, fwd_c=128, query_q=64, query_k=32, key=64, bwd_c=64)),
        (128, dict(fwd_q=64, fwd_k=64, fwd_c=64, query_q=32, query_k=32, key=64, bwd_c=64)),
        (256, dict(fwd_q=64, fwd_k=64, fwd_c=128, query_q=32, query_k=16, key=64, bwd_c=32)),
    ],
    "tf32": [
        (64, dict(fwd_q=64, fwd_k=64, fwd_c=64, query_q=32, query_k=32, key=64, bwd_c=32)),
        (128, dict(fwd_q=64, fwd_k=64, fwd_c=64, query_q=32, query_k=16, key=64, bwd_c=32)),
    ],
}
LAUNCH = {"num_warps": 8}  # at 4 warps ptxas spills in every kernel at the benchmark tiles


def max_qk_channels(dtype: torch.dtype) -> int:
    return TILES["tf32" if dtype == torch.float32 else "16bit"][-1][0]


def tiles(dtype: torch.dtype, cq: int) -> dict:
    """The tile caps for ``cq`` q/k channels in ``dtype`` (the first row that takes them)."""
    rows = TILES["tf32" if dtype == torch.float32 else "16bit"]
    return dict(next((t for limit, t in rows if cq <= limit), rows[-1][1]))


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
def _tile(ptr, pix, pvalid, ch, CH):
    """Load rows ``pix`` (int64 pixel indices) x channels ``ch`` of a channels-last tensor with CH channels."""
    return tl.load(ptr + pix[:, None] * CH + ch[None, :], mask=pvalid[:, None] & (ch[None, :] < CH), other=0.0)


@triton.jit
def _tile_t(ptr, pix, pvalid, ch, CH):
    """The transpose of ``_tile``: channels x pixels."""
    return tl.load(ptr + pix[None, :] * CH + ch[:, None], mask=pvalid[None, :] & (ch[:, None] < CH), other=0.0)


@triton.jit
def _energies(q, k_ptr, kpix, kvalid, kpos, qpos, qvalid, cq, CQ, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr):
    """S = q @ k^T for one key block, invalid and (optionally) self positions at -inf."""
    s = _dot(q, _tile_t(k_ptr, kpix, kvalid, cq, CQ), PRECISION)
    ok = qvalid[:, None] & kvalid[None, :]
    if MASK_SELF:
        ok = ok & (qpos[:, None] != kpos[None, :])
    return tl.where(ok, s, float("-inf"))


@triton.jit
def _fwd_line_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_in_ptr, lse_ptr,
    CQ, C, L, line_stride, pos_stride, HW, N_CBLOCKS,
    FIRST: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    line = tl.program_id(0)
    b = tl.program_id(2) // N_CBLOCKS
    cblock = tl.program_id(2) % N_CBLOCKS
    qpos = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qvalid = qpos < L
    cq = tl.arange(0, BLOCK_CQ)
    cv = cblock * BLOCK_C + tl.arange(0, BLOCK_C)
    first = b.to(tl.int64) * HW + line.to(tl.int64) * line_stride  # pixel of the line's position 0
    qpix = first + qpos.to(tl.int64) * pos_stride

    q = _tile(q_ptr, qpix, qvalid, cq, CQ)
    m = tl.full([BLOCK_Q], float("-inf"), tl.float32)
    l_sum = tl.zeros([BLOCK_Q], tl.float32)
    acc = tl.zeros([BLOCK_Q, BLOCK_C], tl.float32)
    for k0 in range(0, L, BLOCK_K):
        kpos = k0 + tl.arange(0, BLOCK_K)
        kvalid = kpos < L
        kpix = first + kpos.to(tl.int64) * pos_stride
        s = _energies(q, k_ptr, kpix, kvalid, kpos, qpos, qvalid, cq, CQ, MASK_SELF, PRECISION)
        m_new = tl.maximum(m, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(s - m_safe[:, None])
        alpha = tl.exp(m - m_safe)
        l_sum = l_sum * alpha + tl.sum(p, 1)
        vt = _tile(v_ptr, kpix, kvalid, cv, C)
        acc = acc * alpha[:, None] + _dot(p.to(vt.dtype), vt, PRECISION)
        m = m_new

    # a line that holds only the query itself (column of height 1) has no positions
    has = l_sum > 0
    lse_line = tl.where(has, m + tl.log(tl.where(has, l_sum, 1.0)), float("-inf"))
    o_line = acc / tl.where(has, l_sum, 1.0)[:, None]
    o_ptrs = out_ptr + qpix[:, None] * C + cv[None, :]
    omask = qvalid[:, None] & (cv[None, :] < C)
    if FIRST:
        tl.store(o_ptrs, o_line.to(out_ptr.dtype.element_ty), mask=omask)
        lse = lse_line
    else:
        # the column pass's lse comes from its own buffer: other channel tiles of
        # this pass write the merged lse, and must not see each other's writes
        lse_prev = tl.load(lse_in_ptr + qpix, mask=qvalid, other=0.0)
        lse = tl.maximum(lse_prev, lse_line)
        lse = lse + tl.log(tl.exp(lse_prev - lse) + tl.exp(lse_line - lse))
        o_prev = tl.load(o_ptrs, mask=omask, other=0.0).to(tl.float32)
        o = o_prev * tl.exp(lse_prev - lse)[:, None] + o_line * tl.exp(lse_line - lse)[:, None]
        tl.store(o_ptrs, o.to(out_ptr.dtype.element_ty), mask=omask)
    if cblock == 0:
        tl.store(lse_ptr + qpix, lse, mask=qvalid)


@triton.jit
def _bwd_delta_kernel(do_ptr, o_ptr, delta_ptr, C, NPIX, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """D[pixel] = sum_c dO * O, the softmax-backward row term."""
    pix = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    valid = pix < NPIX
    acc = tl.zeros([BLOCK_P], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        acc += tl.sum(_tile(do_ptr, pix, valid, c, C).to(tl.float32) * _tile(o_ptr, pix, valid, c, C).to(tl.float32), 1)
    tl.store(delta_ptr + pix, acc, mask=valid)


@triton.jit
def _store_grad(ptr, pix, valid, ch, CH, g, ACCUM: tl.constexpr):
    """Write a gradient tile in the tensor's dtype; the row pass adds to the column pass's."""
    ptrs = ptr + pix[:, None] * CH + ch[None, :]
    mask = valid[:, None] & (ch[None, :] < CH)
    if ACCUM:
        g += tl.load(ptrs, mask=mask, other=0.0).to(tl.float32)
    tl.store(ptrs, g.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_query_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr, p_ws, ds_ws,
    CQ, C, L, line_stride, pos_stride, HW, N_LINES,
    ACCUM: tl.constexpr, MASK_SELF: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_CQ: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Query-major: P and dS of one query block against its whole line (to the workspace), and dq."""
    line = tl.program_id(0)
    b = tl.program_id(2)
    qpos = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    qvalid = qpos < L
    cq = tl.arange(0, BLOCK_CQ)
    first = b.to(tl.int64) * HW + line.to(tl.int64) * line_stride
    qpix = first + qpos.to(tl.int64) * pos_stride
    ws_rows = ((b.to(tl.int64) * N_LINES + line) * L + qpos) * L

    q = _tile(q_ptr, qpix, qvalid, cq, CQ)
    lse = tl.load(lse_ptr + qpix, mask=qvalid, other=0.0)
    delta = tl.load(delta_ptr + qpix, mask=qvalid, other=0.0)
    dq = tl.zeros([BLOCK_Q, BLOCK_CQ], tl.float32)
    for k0 in range(0, L, BLOCK_K):
        kpos = k0 + tl.arange(0, BLOCK_K)
        kvalid = kpos < L
        kpix = first + kpos.to(tl.int64) * pos_stride
        p = tl.exp(_energies(q, k_ptr, kpix, kvalid, kpos, qpos, qvalid, cq, CQ, MASK_SELF, PRECISION) - lse[:, None])
        dp = tl.zeros([BLOCK_Q, BLOCK_K], tl.float32)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            do = _tile(do_ptr, qpix, qvalid, c, C)
            dp += _dot(do, _tile_t(v_ptr, kpix, kvalid, c, C), PRECISION)
        ds = (p * (dp - delta[:, None])).to(q.dtype)
        ws = ws_rows[:, None] + kpos[None, :]
        wmask = qvalid[:, None] & kvalid[None, :]
        tl.store(p_ws + ws, p.to(q.dtype), mask=wmask)
        tl.store(ds_ws + ws, ds, mask=wmask)
        dq += _dot(ds, _tile(k_ptr, kpix, kvalid, cq, CQ), PRECISION)
    _store_grad(dq_ptr, qpix, qvalid, cq, CQ, dq, ACCUM)


@triton.jit
def _bwd_key_kernel(
    x_ptr, w_ws, dx_ptr,
    CX, L, line_stride, pos_stride, HW, N_LINES, N_CBLOCKS,
    ACCUM: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Key-major: dx[keys] = W^T x[queries] over the line, W from the workspace.

    dk takes (x, W) = (q, dS), dv takes (dO, P); channels tiled by BLOCK_C.
    """
    line = tl.program_id(0)
    b = tl.program_id(2) // N_CBLOCKS
    c = (tl.program_id(2) % N_CBLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    kpos = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    kvalid = kpos < L
    first = b.to(tl.int64) * HW + line.to(tl.int64) * line_stride
    ws_line = (b.to(tl.int64) * N_LINES + line) * L

    acc = tl.zeros([BLOCK_K, BLOCK_C], tl.float32)
    for q0 in range(0, L, BLOCK_Q):
        qpos = q0 + tl.arange(0, BLOCK_Q)
        qvalid = qpos < L
        w = tl.load(w_ws + (ws_line + qpos[:, None]) * L + kpos[None, :],
                    mask=qvalid[:, None] & kvalid[None, :], other=0.0)
        x = _tile(x_ptr, first + qpos.to(tl.int64) * pos_stride, qvalid, c, CX)
        acc += _dot(tl.trans(w), x.to(w.dtype), PRECISION)
    _store_grad(dx_ptr, first + kpos.to(tl.int64) * pos_stride, kvalid, c, CX, acc, ACCUM)


# ----------------------------------------------------------------------------- host side

def _pow2(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(max(1, n))))


def _passes(h: int, w: int):
    """(name, L, n_lines, line_stride, pos_stride, mask_self) in pixels: the column pass first, then the row pass."""
    return (("column", h, w, 1, w, True), ("row", w, h, w, 1, False))


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        return "upcast"  # the CPU interpreter's bf16 tl.dot returns garbage (Triton 3.x)
    return "tf32"  # float32: TF32 tensor cores (check_supported); 16-bit types: ignored


def launch_plan(b: int, cq: int, c: int, h: int, w: int, dtype: torch.dtype) -> list:
    """Every kernel launch of one forward and backward, in order: dicts of name, phase, pass, grid, meta.

    The one source of tile choices: the launches below run it, and the compile
    test and the work/traffic accounting read it.
    """
    t = tiles(dtype, cq)
    block_cq = _pow2(cq, 16, max_qk_channels(dtype))
    precision = _precision(dtype)
    c_fwd, c_bwd, cq_bwd = _pow2(c, 16, t["fwd_c"]), _pow2(c, 16, t["bwd_c"]), _pow2(cq, 16, t["bwd_c"])
    plan = []
    for i, (name, length, n_lines, line_stride, pos_stride, mask_self) in enumerate(_passes(h, w)):
        geometry = dict(L=length, n_lines=n_lines, line_stride=line_stride, pos_stride=pos_stride)
        bq, bk = _pow2(length, 16, t["fwd_q"]), _pow2(length, 16, t["fwd_k"])
        plan.append(dict(kernel="fwd", phase="forward", line_pass=name, **geometry, channels=c,
                         grid=(n_lines, triton.cdiv(length, bq), b * triton.cdiv(c, c_fwd)),
                         meta=dict(FIRST=i == 0, MASK_SELF=mask_self, PRECISION=precision, BLOCK_Q=bq,
                                   BLOCK_K=bk, BLOCK_CQ=block_cq, BLOCK_C=c_fwd)))
    plan.append(dict(kernel="delta", phase="backward", line_pass=None, grid=(triton.cdiv(b * h * w, 64),),
                     meta=dict(BLOCK_P=64, BLOCK_C=c_bwd)))
    for i, (name, length, n_lines, line_stride, pos_stride, mask_self) in enumerate(_passes(h, w)):
        geometry = dict(L=length, n_lines=n_lines, line_stride=line_stride, pos_stride=pos_stride)
        bq, bk = _pow2(length, 16, t["query_q"]), _pow2(length, 16, t["query_k"])
        plan.append(dict(kernel="query", phase="backward", line_pass=name, **geometry, channels=c,
                         grid=(n_lines, triton.cdiv(length, bq), b),
                         meta=dict(ACCUM=i > 0, MASK_SELF=mask_self, PRECISION=precision, BLOCK_Q=bq,
                                   BLOCK_K=bk, BLOCK_CQ=block_cq, BLOCK_C=c_bwd)))
        block = _pow2(length, 16, t["key"])
        for grad, channels, tile in (("dk", cq, cq_bwd), ("dv", c, c_bwd)):
            plan.append(dict(kernel="key", grad=grad, phase="backward", line_pass=name, **geometry,
                             channels=channels, grid=(n_lines, triton.cdiv(length, block),
                                                      b * triton.cdiv(channels, tile)),
                             meta=dict(ACCUM=i > 0, PRECISION=precision, BLOCK_Q=block, BLOCK_K=block,
                                       BLOCK_C=tile)))
    return plan


def _forward(q, k, v, plan):
    """q, k, v channels-last (B, H, W, C); returns out in their layout and dtype, and the log-sum-exp."""
    b, h, w, cq = q.shape
    c = v.shape[3]
    out = torch.empty((b, h, w, c), device=q.device, dtype=q.dtype)
    lse_col = torch.empty((b, h, w), device=q.device, dtype=torch.float32)
    lse = torch.empty_like(lse_col)
    for launch in (p for p in plan if p["kernel"] == "fwd"):
        m = launch["meta"]
        _fwd_line_kernel[launch["grid"]](
            q, k, v, out, lse_col, lse_col if m["FIRST"] else lse, cq, c, launch["L"], launch["line_stride"],
            launch["pos_stride"], h * w, launch["grid"][2] // b, **m, **LAUNCH)
    return out, lse


def workspace_numel(b: int, h: int, w: int) -> int:
    """Elements of each backward workspace (P and dS): the larger pass's (B, lines, L, L)."""
    return b * h * w * max(h, w)


def _backward(q, k, v, out, lse, grad_out, plan):
    b, h, w, cq = q.shape
    c = v.shape[3]
    hw = h * w
    delta = torch.empty((b, h, w), device=q.device, dtype=torch.float32)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    p_ws = torch.empty(workspace_numel(b, h, w), device=q.device, dtype=q.dtype)
    ds_ws = torch.empty_like(p_ws)
    for launch in (p for p in plan if p["phase"] == "backward"):
        m, grid = launch["meta"], launch["grid"]
        if launch["kernel"] == "delta":
            _bwd_delta_kernel[grid](grad_out, out, delta, c, b * hw, **m, **LAUNCH)
            continue
        geometry = (launch["L"], launch["line_stride"], launch["pos_stride"], hw, launch["n_lines"])
        if launch["kernel"] == "query":
            _bwd_query_kernel[grid](q, k, v, grad_out, lse, delta, dq, p_ws, ds_ws, cq, c, *geometry, **m, **LAUNCH)
        else:
            x, ws, dx = (q, ds_ws, dk) if launch["grad"] == "dk" else (grad_out, p_ws, dv)
            _bwd_key_kernel[grid](x, ws, dx, launch["channels"], *geometry, grid[2] // b, **m, **LAUNCH)
    return dq, dk, dv


def _nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


class CrissCrossAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, the output (channels-last) and the per-pixel log-sum-exp."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, q, k, v):
        q, k, v = (as_channels_last(t) for t in (q, k, v))
        b, h, w, cq = q.shape
        plan = launch_plan(b, cq, v.shape[3], h, w, q.dtype)
        out, lse = _forward(q, k, v, plan)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan = plan
        return _nchw(out)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, as_channels_last(grad_out.to(q.dtype)), ctx.plan)
        return _nchw(dq), _nchw(dk), _nchw(dv)


def check_supported(q: torch.Tensor):
    """Raise ConfigError (a ValueError) when the kernel cannot take these inputs."""
    if q.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ConfigError(f"the Triton criss-cross kernel takes float32/float16/bfloat16, got {q.dtype}")
    if q.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        raise ConfigError("the Triton criss-cross kernel runs float32 as TF32 only: set "
                          "torch.backends.cuda.matmul.allow_tf32 = True, or use bfloat16/float16 (autocast); "
                          "the automatic dispatch uses the lean PyTorch op for IEEE float32")
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
    The result is channels_last in memory (same shape and values).
    """
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    check_supported(q)
    return CrissCrossAttentionFunction.apply(q, k, v)
