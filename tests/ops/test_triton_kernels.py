"""The fused Triton kernel against the reference: values and gradients, all dtypes.

On a machine without CUDA the kernels run on CPU tensors through
TRITON_INTERPRET=1 (set in conftest.py).
"""
import os

import pytest
import torch

triton = pytest.importorskip("triton")

from segattn.ops import criss_cross_attention, select_impl  # noqa: E402
from segattn.ops import triton_kernels as tk  # noqa: E402
from segattn.ops.reference import criss_cross_attention_reference  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_kernel_device = pytest.mark.skipif(
    DEVICE == "cpu" and __import__("os").environ.get("TRITON_INTERPRET") != "1",
    reason="needs CUDA or TRITON_INTERPRET=1")


def set_tf32(allowed: bool):
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    return old


@pytest.fixture(autouse=True)
def tf32():
    """float32 runs in the kernel as TF32 only, opted into as torch does."""
    old = set_tf32(True)
    yield
    set_tf32(old)


def set_tiles(monkeypatch, line, channels):
    """Every tile cap of every TILES row set to ``line`` positions and ``channels`` channels."""
    for precision, rows in tk.TILES.items():
        monkeypatch.setitem(tk.TILES, precision, [
            (limit, {name: channels if name.endswith("_c") else line for name in caps}) for limit, caps in rows])


@pytest.fixture
def big_tiles(monkeypatch):
    """The interpreter's cost is per program and loop step: larger tiles keep the sweep short."""
    if DEVICE == "cpu":
        set_tiles(monkeypatch, 128, 512)


# float32 is TF32 on a GPU (10-bit mantissa): errors like float16's; the interpreter multiplies in full float32
FP32_TOL = dict(atol=1e-5, rtol=1e-4, scaled=True) if DEVICE == "cpu" else dict(atol=1e-2, rtol=1e-2, scaled=True)


def inputs(b, cq, c, h, w, dtype=torch.float32):
    q, k = (torch.randn(b, cq, h, w, device=DEVICE, dtype=dtype) for _ in range(2))
    v = torch.randn(b, c, h, w, device=DEVICE, dtype=dtype)
    return q, k, v


def compare(q, k, v, atol, rtol, scaled=False):
    """Triton output and gradients vs the float64 reference on the same inputs.

    With ``scaled`` the absolute tolerance is ``atol`` times the largest
    reference magnitude of each tensor (at least 1: a gradient that is exactly 0,
    as at a 1x1 image, still allows rounding): rounding errs relative to
    the largest terms of a sum, not to each element.
    """
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    out = tk.criss_cross_attention_triton(q, k, v)
    assert out.dtype == q.dtype and out.shape == (q.shape[0], v.shape[1], *q.shape[2:])
    assert out.is_contiguous(memory_format=torch.channels_last)  # the layout it computes in (README)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad)
    r = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = criss_cross_attention_reference(*r)
    ref_grads = torch.autograd.grad(ref, r, grad.double())
    def tol(e):
        return atol * max(e.abs().max().item(), 1.0) if scaled else atol

    torch.testing.assert_close(out.double(), ref, atol=tol(ref), rtol=rtol)
    for name, a, e in zip("qkv", grads, ref_grads):
        assert a.dtype == q.dtype
        torch.testing.assert_close(a.double(), e, atol=tol(e), rtol=rtol, msg=lambda m: f"d{name}: {m}")


# Every size the kernel must handle appears at least once: H != W, H=1, W=1, 1x1,
# 13x29, 97x97; B in {1, 3}; Cq in {8, 64}; C in {16, 100, 512}. The full product
# would take the interpreter an hour.
SWEEP = [  # B, Cq, C, H, W
    (1, 8, 16, 97, 97),
    (3, 64, 100, 13, 29),
    (1, 64, 512, 13, 29),
    (3, 8, 512, 1, 37),
    (1, 64, 16, 29, 1),
    (3, 8, 100, 1, 1),
    (1, 8, 16, 6, 5),
]


@needs_kernel_device
@pytest.mark.parametrize("shape", SWEEP, ids=lambda s: "x".join(map(str, s)))
def test_float32_matches_reference(shape, big_tiles):
    compare(*inputs(*shape), **FP32_TOL)


@needs_kernel_device
@pytest.mark.parametrize("shape", [(2, 8, 16, 13, 29), (1, 8, 40, 40, 3)])
def test_multi_tile_loops(shape, monkeypatch):
    """Small tiles force several query/key/channel tiles per line, and partial last tiles."""
    set_tiles(monkeypatch, 16, 16)
    compare(*inputs(*shape), **FP32_TOL)


# Half types: the reference sees the same rounded inputs, so what differs is the
# kernel's own rounding: softmax weights and dS are rounded to the input type
# (11 mantissa bits for fp16, 8 for bf16) before their tensor-core products, and
# results once more to the output type (the column pass's output and the column
# pass's gradients are rounded once more before the row pass adds to them). Each is a relative error of 2^-11 or
# 2^-8 on the largest terms of a sum over up to H + W positions, so we allow
# 1% (fp16) and 4% (bf16) of each tensor's largest magnitude.
@needs_kernel_device
@pytest.mark.parametrize("dtype,tol", [(torch.float16, 1e-2), (torch.bfloat16, 4e-2)])
def test_half_types(dtype, tol, big_tiles):
    compare(*inputs(2, 64, 100, 13, 29, dtype), atol=tol, rtol=tol, scaled=True)


@needs_kernel_device
def test_non_contiguous_and_mixed_dtype_inputs(big_tiles):
    q, k, v = inputs(2, 8, 16, 7, 9)
    qt = q.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not qt.is_contiguous()
    out = tk.criss_cross_attention_triton(qt, k, v)
    torch.testing.assert_close(out, criss_cross_attention_reference(q, k, v), atol=1e-4, rtol=1e-4)
    assert tk.criss_cross_attention_triton(q.half(), k, v).dtype == torch.float32  # promoted


def test_unsupported_inputs_are_reported():
    with pytest.raises(ValueError, match="at most 256 q/k channels in bfloat16, got 300"):
        tk.check_supported(torch.zeros(1, 300, 2, 2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="float32/float16/bfloat16"):
        tk.check_supported(torch.zeros(1, 8, 2, 2, dtype=torch.float64))


def test_ieee_float32_goes_to_the_lean_op():
    """IEEE float32 on Triton's CUDA-core dot spills and runs far slower than the reference: only TF32 is taken."""
    set_tf32(False)
    assert not tk.supported(torch.zeros(1, 8, 2, 2)) and tk.supported(torch.zeros(1, 8, 2, 2, dtype=torch.half))
    with pytest.raises(ValueError, match="runs float32 as TF32 only: set torch.backends.cuda.matmul.allow_tf32"):
        tk.check_supported(torch.zeros(1, 8, 2, 2))


def test_dispatch_rules(monkeypatch):
    q = torch.zeros(1, 8, 3, 3)
    monkeypatch.delenv("SEGATTN_CCA_IMPL", raising=False)
    assert select_impl(q) == "lean"  # auto: CPU tensors use the memory-lean PyTorch op
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "reference")
    assert select_impl(q) == "reference"
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "lean")
    assert select_impl(q) == "lean"
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "bogus")
    with pytest.raises(ValueError, match="SEGATTN_CCA_IMPL='bogus' is not one of auto, reference, lean, triton"):
        select_impl(q)
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        criss_cross_attention(q, q, q)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert select_impl(q) == "triton"
    with pytest.raises(ValueError, match="float32/float16/bfloat16"):
        select_impl(q.double())


def test_impl_argument_wins_over_the_environment(monkeypatch):
    from segattn.ops import CrissCrossAttention, set_impl

    q = torch.zeros(1, 8, 3, 3)
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "lean")
    assert select_impl(q, "reference") == "reference" and select_impl(q) == "lean"
    with pytest.raises(ValueError, match="impl='fast' is not one of auto, reference, lean, triton"):
        criss_cross_attention(q, q, q, impl="fast")
    # the module's impl reaches the op: the reference keeps its attention weights for backward, the lean op does not
    from segattn.analysis.benchmark import saved_activation_bytes

    x = torch.randn(1, 16, 9, 11)
    m = CrissCrossAttention(16)
    saved = {impl: saved_activation_bytes(set_impl(m, impl), (x,), exclude={x.untyped_storage().data_ptr()})
             for impl in ("reference", "lean")}
    assert saved["reference"] > saved["lean"] and m.impl == "lean"
    assert os.environ["SEGATTN_CCA_IMPL"] == "lean"  # nothing rewrote the user's override


def test_forced_triton_without_triton_is_an_error(monkeypatch):
    import segattn.ops.criss_cross as cc

    monkeypatch.setattr(cc, "triton_available", lambda: False)
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "triton")
    with pytest.raises(RuntimeError, match="triton is not importable"):
        select_impl(torch.zeros(1, 8, 2, 2))


@needs_kernel_device
def test_forced_triton_runs_through_module(monkeypatch, big_tiles):
    from segattn.ops import CrissCrossAttention

    m = CrissCrossAttention(32).to(DEVICE)
    m.gamma.data.fill_(1.0)
    x = torch.randn(2, 32, 6, 7, device=DEVICE, requires_grad=True)
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "triton")
    y = m(x)
    y.sum().backward()
    g_triton = x.grad.clone()
    x.grad = None
    monkeypatch.setenv("SEGATTN_CCA_IMPL", "reference")
    y_ref = m(x)
    y_ref.sum().backward()
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g_triton, x.grad, atol=1e-4, rtol=1e-4)


def test_kernels_compile_for_hopper_without_spills():
    """The dispatch's launches at the caps and floor of its tiles compile for sm_90 in shared memory, unspilled.

    ``aot_compile.py`` compiles the dispatch's own plans (benchmark shapes and the
    extremes of each TILES row, all dtypes) and reads ptxas -v; no GPU needed.
    """
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aot_compile.py")
    proc = subprocess.run([sys.executable, script, "90"], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    kinds = {(r["kernel"], r["dtype"]) for r in rows}
    assert kinds == {(k, d) for k in ("fwd", "delta", "query", "key") for d in ("fp32", "bf16", "fp16")}
    tiles = {r["meta"].get("BLOCK_Q") for r in rows if r["kernel"] != "delta"}
    assert {16, 32, 64} <= tiles  # the floor and the caps of the line tiles are among the plans
    for r in rows:
        where = f"{r['kernel']} {r['dtype']} {r['meta']} (first at B, Cq, C, H, W = {r['shape']})"
        assert r["shared"] <= tk.SHARED_MEMORY_LIMIT, f"{where}: {r['shared']} B of shared memory"
        assert r["spill_bytes"] == 0, f"{where}: {r['spill_bytes']} B of register spills"
        assert r["registers"] <= 255


def test_float32_with_more_qk_channels_than_fit_goes_to_the_lean_op():
    """TF32 with 256 q/k channels would need 311296 B of shared memory on sm_90: refused, dispatched elsewhere."""
    from segattn.errors import ConfigError
    from segattn.ops.triton_kernels import check_supported, supported

    assert supported(torch.zeros(1, 128, 4, 4)) and supported(torch.zeros(1, 256, 4, 4, dtype=torch.bfloat16))
    assert not supported(torch.zeros(1, 256, 4, 4))
    with pytest.raises(ConfigError, match="at most 128 q/k channels in float32, got 256"):
        check_supported(torch.zeros(1, 256, 4, 4))
