"""All-pairs attention over a map's pixels that keeps no ``(N x N)`` matrix: DANet's PAM, the Non-local block.

``q, k (B, N, Cq)`` and ``v (B, N, Cv)`` give ``softmax(scale * q k^T) v`` as
``(B, N, Cv)``: every one of the ``N = H W`` query pixels weighs every pixel. The
dense form (``impl="dense"``, the papers' code) builds the ``(B, N, N)`` weights
and autograd keeps them: 708 MB at batch 2 on 97 x 97 features. ``impl="lean"``
keeps only q, k, v, the output and one float per query (the log-sum-exp of its
energies; in bfloat16 two: its largest energy and weight), and recomputes the
weights in backward, as FlashAttention does:

* equal head sizes (the Non-local block, ``Cq = Cv``) go to PyTorch's
  ``scaled_dot_product_attention`` restricted to its fused backends: flash,
  memory-efficient or cuDNN on CUDA; on a CPU its flash kernel for float32 and
  float64 (about twice the dense form's speed there; in bfloat16 on 2 CPU cores it
  timed slower than the function below, which takes those);
* unequal ones (DANet's PAM: ``Cq = C/8``, ``Cv = C``), which those kernels
  refuse, 16-bit ones on a CPU, and any case the fused kernels refuse, go to
  :class:`LeanAttentionFunction`: the queries a block at a time, each block's
  weights formed in float32 (float64 for float64 inputs), used and dropped; in
  bfloat16 (autocast) they stay bfloat16, as the dense form keeps them there, so
  no block is copied to float32 and back.

While exporting (ONNX tracing) the dense form is used: the exported graph holds
MatMul, Softmax, MatMul, which ONNX Runtime and OpenVINO run.

Forward takes the queries a block at a time (whole rows: an exact softmax);
backward the keys, with ``P_j`` a block of columns recomputed from the saved
log-sum-exp, ``dO`` the output gradient and ``D = rowsum(dO * O)``:
``dV_j = P_j^T dO``, ``dS_j = P_j (dO V_j^T - D)``, ``dK_j = scale dS_j^T Q``
(each written once) and ``dQ += scale dS_j K_j``.
"""
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

IMPLS = ("lean", "dense")
BLOCK_ELEMENTS = 2 ** 22  # float32 weights formed at once, block x N: 16 MiB (2^21..2^23 timed alike)
_FUSED = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}; got {impl!r}")
    return impl


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The papers' form: the ``(B, N, N)`` weights formed, kept by autograd for backward."""
    energy = torch.bmm(q, k.transpose(1, 2))
    if scale != 1.0:
        energy = energy * scale
    return torch.bmm(torch.softmax(energy, dim=-1), v)


class AttentionRows:
    """All-pairs attention weights ``(B, N, N)`` kept as q and k: ``rows[b, i]`` forms query i's row only.

    What an attention picture needs for a clicked pixel: ``O(N)`` memory for the whole image, a
    matrix-vector product a query. Indexed like the dense tensor (``rows[b, i]``, ``i`` an int, a list or
    a slice), each row summing to 1; ``dense()`` forms the whole matrix, for tests on small maps.
    """

    def __init__(self, q: torch.Tensor, k: torch.Tensor, scale: float = 1.0):
        self.q, self.k, self.scale = q, k, scale
        self.shape = (q.shape[0], q.shape[1], k.shape[1])

    def __getitem__(self, key):
        b, i = key
        energy = torch.matmul(self.q[b][i].to(_stats_dtype(self.q)), self.k[b].to(_stats_dtype(self.k)).t())
        return torch.softmax(energy * self.scale, dim=-1)

    def dense(self) -> torch.Tensor:
        return torch.stack([self[b, :] for b in range(self.shape[0])])


def _stats_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)  # float32 at least; float64 stays float64


def _blocks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _block_size(n: int, itemsize: int = 4) -> int:
    """Rows of a block of ``(rows, n)`` weights: ``BLOCK_ELEMENTS`` float32 values' worth of bytes (twice the
    elements in bfloat16), split into equal blocks (9409 rows: 22 of 428, not 21 of 445 and one of 64)."""
    most = max(1, min(n, BLOCK_ELEMENTS * 4 // itemsize // max(1, n)))
    count = -(-n // most)
    return -(-n // count)


def _energies(q, k_t, scale):
    """``scale q k^T`` (``k_t`` given transposed) computed in q and k's dtype (as the dense form under autocast),
    then in the statistics dtype."""
    e = torch.matmul(q, k_t).to(_stats_dtype(q))
    return e.mul_(scale) if scale != 1.0 else e


def _images(b: int, t: torch.Tensor):
    """Batch slices a pass works on: one image on a CPU (its blocks stay cache-sized and the products write
    straight into the result), the whole batch on a GPU (fewer, larger launches)."""
    step = b if t.is_cuda else 1
    return [slice(i, i + step) for i in range(0, b, step)]


def _mm(a, b, dst):
    """``dst = a @ b``, written in place where ``dst`` is contiguous (one image's rows), else copied in."""
    if dst.is_contiguous():
        torch.matmul(a, b, out=dst)
    else:
        dst.copy_(torch.matmul(a, b))


def _lean_forward(q, k, v, scale):
    """Query blocks: each block's rows are whole, so its softmax is exact and its output final."""
    b, n, _ = q.shape
    out = v.new_empty(b, n, v.shape[-1])
    lse = q.new_empty(b, n, dtype=_stats_dtype(q))
    for i in _images(b, q):
        k_t = k[i].transpose(-1, -2).contiguous()  # once an image: a matmul copies a transposed operand each call
        for s in _blocks(n, _block_size(n)):
            e = _energies(q[i, s], k_t, scale)
            p = torch.softmax(e, dim=-1)  # one fused pass; at a row's largest energy p = 1 / sum exp(e - max):
            lse[i, s] = e.amax(-1) - p.amax(-1).log()  # so lse = max - log p_max, two read-only passes
            _mm(p.to(v.dtype), v[i], out[i, s])
    return out, (lse,)


def _lean_backward(q, k, v, out, stats, grad_out, scale):
    """Key blocks, transposed: ``P_j^T = exp(scale k_j q^T - lse)`` ``(m, N)`` from the saved log-sum-exp, so
    each block's dK and dV are final (written once) and only ``dQ^T (Cq, N)`` is summed over blocks. Every
    large product takes its operands as stored (a 16-bit matmul copies a transposed first operand)."""
    lse, = stats
    b, n, _ = q.shape
    acc = _stats_dtype(q)
    delta = (grad_out.to(acc) * out.to(acc)).sum(-1)[:, None, :]  # rowsum(P * dP) = dO . O, (B, 1, N)
    lse_t = lse[:, None, :]
    dq_t = torch.zeros(b, q.shape[-1], n, dtype=acc, device=q.device)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    for i in _images(b, q):
        g = grad_out[i]
        q_t, g_t = q[i].transpose(-1, -2).contiguous(), g.transpose(-1, -2).contiguous()  # once an image
        for s in _blocks(n, _block_size(n)):
            p_t = _energies(k[i, s], q_t, scale).sub_(lse_t[i]).exp_()  # (images, m, N)
            _mm(p_t.to(v.dtype), g, dv[i, s])
            ds_t = p_t.mul_(torch.matmul(v[i, s], g_t).to(acc).sub_(delta[i]))
            if scale != 1.0:
                ds_t.mul_(scale)
            ds_t = ds_t.to(q.dtype)
            _mm(ds_t, q[i], dk[i, s])
            dq_t[i] += torch.matmul(k[i, s].transpose(-1, -2), ds_t).to(acc)
    return dq_t.transpose(1, 2).to(q.dtype), dk, dv


def _bf16_forward(q, k, v, scale):
    """bfloat16 as the dense form runs it under autocast: products and the softmax's output in bfloat16 (its
    statistics in float32 inside the kernel), no float32 copy of a block. Keeps each query's largest energy
    and largest weight (``P = exp(E - max) * p_max``) instead of a log-sum-exp. ``scale`` goes into q once."""
    b, n, _ = q.shape
    if scale != 1.0:
        q = q * scale
    out = v.new_empty(b, n, v.shape[-1])
    e_max, p_max = q.new_empty(b, n), q.new_empty(b, n)
    for i in _images(b, q):
        k_t = k[i].transpose(-1, -2).contiguous()
        for s in _blocks(n, _block_size(n, 2)):
            e = torch.matmul(q[i, s], k_t)
            p = torch.softmax(e, dim=-1)
            torch.amax(e, -1, out=e_max[i, s])
            torch.amax(p, -1, out=p_max[i, s])
            _mm(p, v[i], out[i, s])
    return out, (e_max, p_max)


def _bf16_backward(q, k, v, out, stats, grad_out, scale):
    """Key blocks as :func:`_lean_backward`, in bfloat16: ``exp(E - max)`` lies in (0, 1], where bfloat16 is
    finest (``E - lse`` would be near ``-log N`` for a spread-out row, 16x coarser at N = 9409), and each
    query's ``p_max`` goes into ``dO`` and ``D`` once: ``dV_j = exp(E - max)_j^T (p_max dO)``,
    ``dS_j = exp(E - max)_j (dO V_j^T p_max - D p_max)``. Gradients stay within a small factor of the dense
    form's bfloat16 error (tested against float64)."""
    e_max, p_max = stats
    b, n, _ = q.shape
    if scale != 1.0:
        q = q * scale
    c = p_max.float()[..., None]
    delta = (grad_out.float() * out.float()).sum(-1, keepdim=True)  # rowsum(P * dP) = dO . O, (B, N, 1)
    g_c = (grad_out.float() * c).to(q.dtype)
    delta_c = (delta * c).to(q.dtype).transpose(1, 2)  # (B, 1, N)
    max_t = e_max[:, None, :]
    dq_t = torch.zeros(b, q.shape[-1], n, dtype=torch.float32, device=q.device)
    dk, dv = torch.empty_like(k), torch.empty_like(v)
    for i in _images(b, q):
        g = g_c[i]
        q_t, g_t = q[i].transpose(-1, -2).contiguous(), g.transpose(-1, -2).contiguous()
        for s in _blocks(n, _block_size(n, 2)):
            p_t = torch.matmul(k[i, s], q_t).sub_(max_t[i]).exp_()  # exp(E - max)^T of this key block
            _mm(p_t, g, dv[i, s])
            ds_t = torch.matmul(v[i, s], g_t).sub_(delta_c[i]).mul_(p_t)
            _mm(ds_t, q[i], dk[i, s])
            dq_t[i] += torch.matmul(k[i, s].transpose(-1, -2), ds_t)
    if scale != 1.0:
        dq_t.mul_(scale)
    return dq_t.transpose(1, 2).to(q.dtype), dk, dv


def _passes(dtype: torch.dtype):
    """The (forward, backward) pair :class:`LeanAttentionFunction` runs for inputs of ``dtype``."""
    return (_bf16_forward, _bf16_backward) if dtype == torch.bfloat16 else (_lean_forward, _lean_backward)


class LeanAttentionFunction(torch.autograd.Function):
    """Saves q, k, v, the output and one or two floats a query; recomputes the weights block by block.

    bfloat16 inputs take :func:`_bf16_forward` / :func:`_bf16_backward`, the rest (float16 included: its
    range could not hold ``p_max dO``) the float32-statistics pair.
    """

    @staticmethod
    def forward(ctx, q, k, v, scale):
        with torch.autocast(q.device.type, enabled=False):  # dtypes are explicit here
            out, stats = _passes(q.dtype)[0](q, k, v, scale)
        ctx.save_for_backward(q, k, v, out, *stats)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, *stats = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            dq, dk, dv = _passes(q.dtype)[1](q, k, v, out, stats, grad_out.to(v.dtype).contiguous(), ctx.scale)
        return dq, dk, dv, None


def _fused(q, k, v, scale):
    """PyTorch's fused attention, or None where none of its fused kernels takes these inputs (never the
    unfused math backend, which forms the whole matrix)."""
    try:
        with warnings.catch_warnings(), sdpa_kernel(_FUSED):
            warnings.simplefilter("ignore")  # "kernel not used because ...": the fallback below answers it
            return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=scale)[:, 0]
    except RuntimeError:
        return None


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float = 1.0,
                   impl: str = "lean") -> torch.Tensor:
    """``softmax(scale * q k^T) v``: ``q, k (B, N, Cq)``, ``v (B, N, Cv)`` -> ``(B, N, Cv)``.

    ``impl="lean"`` (the default) keeps O(N) memory for backward beyond q, k, v and the output,
    ``"dense"`` the ``(B, N, N)`` weights (see the module docstring). Mixed input dtypes (as autocast can
    produce) are promoted to a common one.
    """
    check_impl(impl)
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if impl == "dense" or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return dense_attention(q, k, v, scale)
    # rows of (B, N, C) as stored: the fused kernels want them, and a 16-bit matmul of the function below would
    # copy an operand given transposed once a block
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if q.shape[-1] == v.shape[-1] and (q.is_cuda or dtype in (torch.float32, torch.float64)):
        out = _fused(q, k, v, float(scale))
        if out is not None:
            return out
    return LeanAttentionFunction.apply(q, k, v, float(scale))
