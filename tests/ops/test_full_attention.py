"""All-pairs attention, lean against dense: values and gradients, memory kept, autocast, rows on demand."""
import pytest
import torch

from segattn.analysis.benchmark import saved_activation_bytes
from segattn.models.attention.non_local import NonLocalBlock
from segattn.models.heads.danet import PositionAttention
from segattn.ops import full_attention as fa
from segattn.ops.full_attention import AttentionRows, LeanAttentionFunction, dense_attention, full_attention

# (B, N, Cq, Cv): unequal heads (DANet's PAM, the block-wise function), equal ones (Non-local, fused), N = 1
SHAPES = [(2, 35, 3, 7), (1, 17, 4, 4), (2, 1, 2, 5), (1, 1, 3, 3), (3, 12, 5, 2)]


def _qkv(b, n, cq, cv, dtype=torch.float64):
    return [torch.randn(b, n, c, dtype=dtype, requires_grad=True) for c in (cq, cq, cv)]


@pytest.mark.parametrize("b,n,cq,cv", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 0.37])
@pytest.mark.parametrize("block", [fa.BLOCK_ELEMENTS, 20])  # one block of queries; blocks of one or two
def test_lean_equals_dense_values_and_gradients(b, n, cq, cv, scale, block, monkeypatch):
    monkeypatch.setattr(fa, "BLOCK_ELEMENTS", block)
    q, k, v = _qkv(b, n, cq, cv)
    out, ref = full_attention(q, k, v, scale), dense_attention(q, k, v, scale)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("b,n,cq,cv", [(2, 9, 3, 5), (1, 1, 2, 3), (1, 6, 4, 4)])
def test_block_function_passes_gradcheck(b, n, cq, cv, monkeypatch):
    monkeypatch.setattr(fa, "BLOCK_ELEMENTS", 2 * n)  # two queries a block
    q, k, v = _qkv(b, n, cq, cv)
    assert torch.autograd.gradcheck(lambda *t: LeanAttentionFunction.apply(*t, 0.5), (q, k, v))


def _largest_saved(fn, inputs):
    """Elements of the largest tensor autograd keeps for backward, the inputs themselves left out."""
    sizes, ids = [], {t.untyped_storage().data_ptr() for t in inputs}

    def pack(t):
        if t.untyped_storage().data_ptr() not in ids:
            sizes.append(t.numel())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs).sum().backward()
    return max(sizes, default=0)


@pytest.mark.parametrize("cq,cv", [(8, 64), (16, 16)])
def test_lean_keeps_no_n_by_n_tensor_for_backward(cq, cv):
    n = 30 * 31
    q, k, v = _qkv(2, n, cq, cv, torch.float32)
    assert _largest_saved(lambda *t: dense_attention(*t), (q, k, v)) >= 2 * n * n  # the weights
    assert _largest_saved(lambda *t: full_attention(*t), (q, k, v)) <= 2 * n * max(cq, cv)  # output, lse: O(N)


@pytest.mark.parametrize("module", [PositionAttention(24), NonLocalBlock(24)], ids=["pam", "nonlocal"])
def test_blocks_keep_no_hw_by_hw_tensor(module):
    x = torch.randn(2, 24, 17, 19, requires_grad=True)
    keep = saved_activation_bytes(module, (x,), exclude={x.untyped_storage().data_ptr()})
    module.impl = "dense"
    dense = saved_activation_bytes(module, (x,), exclude={x.untyped_storage().data_ptr()})
    n = 17 * 19
    assert dense >= 2 * n * n * 4 > 4 * keep


@pytest.mark.parametrize("cls", [PositionAttention, NonLocalBlock], ids=["pam", "nonlocal"])
@pytest.mark.parametrize("size", [(5, 7), (1, 6), (6, 1), (1, 1)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_blocks_lean_equal_dense_float64(cls, size, layout):
    torch.manual_seed(0)
    block = cls(16).double()
    for p in block.parameters():  # gamma and the zero-initialised output: let the attention show
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 16, *size, dtype=torch.float64).to(memory_format=layout).requires_grad_()
    out = block(x)
    grads = torch.autograd.grad(out.sum(), [x, *block.parameters()])
    block.impl = "dense"
    ref = block(x)
    ref_grads = torch.autograd.grad(ref.sum(), [x, *block.parameters()])
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=layout) == ref.is_contiguous(memory_format=layout)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("cq,cv", [(8, 64), (32, 32)])
def test_bf16_autocast_close_to_float32(cq, cv):
    q, k, v = (t.detach() for t in _qkv(2, 200, cq, cv, torch.float32))
    ref = dense_attention(q, k, v, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = full_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.2)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() <= 3e-2 * ref.abs().max()


@pytest.mark.parametrize("b,n,cq,cv,scale", [(2, 150, 8, 40, 1.0), (1, 300, 16, 16, 0.25)])
def test_bf16_gradients_as_close_to_float64_as_the_dense_forms(b, n, cq, cv, scale, monkeypatch):
    """The bfloat16 function (blocks of 13 and 6 rows here) against float64, beside the dense form run in
    bfloat16 as autocast runs it: each of output, dQ, dK, dV within 2.5x the dense form's relative error (1.0-1.5x
    measured over seeds)."""
    monkeypatch.setattr(fa, "BLOCK_ELEMENTS", 1000)
    q, k, v = [(1.5 * torch.randn(b, n, c)).bfloat16() for c in (cq, cq, cv)]
    grad = torch.randn(b, n, cv).bfloat16()

    def run(fn, dtype):
        inputs = [t.to(dtype).requires_grad_() for t in (q, k, v)]
        out = fn(*inputs, scale)
        return [out, *torch.autograd.grad(out, inputs, grad.to(dtype))]

    ref = run(dense_attention, torch.float64)
    for name, lean, dense, r in zip(("out", "dq", "dk", "dv"), run(LeanAttentionFunction.apply, torch.bfloat16),
                                    run(dense_attention, torch.bfloat16), ref):
        assert lean.dtype == torch.bfloat16
        error, dense_error = ((t.double() - r).norm() / r.norm() for t in (lean, dense))
        assert error <= 2.5 * dense_error, (name, error, dense_error)


def test_rows_on_demand_equal_the_dense_weights():
    q, k, _ = _qkv(2, 23, 4, 4)
    rows = AttentionRows(q, k, 0.3)
    dense = torch.softmax(q @ k.transpose(1, 2) * 0.3, -1)
    assert rows.shape == (2, 23, 23)
    torch.testing.assert_close(rows[1, 7], dense[1, 7])
    torch.testing.assert_close(rows[0, [3, 5]], dense[0, [3, 5]])
    torch.testing.assert_close(rows.dense(), dense)


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="impl must be one of lean, dense; got 'flash'"):
        NonLocalBlock(8, impl="flash")
