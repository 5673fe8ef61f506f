"""The reference criss-cross op against a dense masked attention written independently."""
import pytest
import torch

from segattn.ops import CrissCrossAttention, criss_cross_attention, criss_cross_attention_maps
from segattn.ops.reference import criss_cross_attention_reference


def dense_criss_cross(q, k, v):
    """HW x HW attention where pixel i may see pixel j iff they share a row or a column."""
    b, cq, h, w = q.shape
    qf, kf, vf = q.flatten(2), k.flatten(2), v.flatten(2)
    energy = torch.einsum("bci,bcj->bij", qf, kf)
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    allowed = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
    energy = energy.masked_fill(~allowed, float("-inf"))
    attn = torch.softmax(energy, dim=-1)
    return torch.einsum("bij,bcj->bci", attn, vf).view(b, v.shape[1], h, w)


SHAPES = [  # B, Cq, C, H, W
    (1, 4, 4, 5, 7),
    (2, 3, 5, 9, 4),
    (1, 2, 6, 1, 8),
    (2, 8, 3, 7, 1),
    (1, 5, 7, 1, 1),
    (3, 6, 10, 13, 11),
]


@pytest.mark.parametrize("b,cq,c,h,w", SHAPES)
def test_reference_matches_dense_value_and_grad(b, cq, c, h, w):
    q, k, v = (torch.randn(b, n, h, w, dtype=torch.float64, requires_grad=True) for n in (cq, cq, c))
    out = criss_cross_attention_reference(q, k, v)
    ref = dense_criss_cross(q, k, v)
    assert out.shape == (b, c, h, w)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    g1 = torch.autograd.grad(out, (q, k, v), grad)
    g2 = torch.autograd.grad(ref, (q, k, v), grad)
    for a, r in zip(g1, g2):
        torch.testing.assert_close(a, r)


def test_gradcheck_float64():
    q, k = (torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(2, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(criss_cross_attention_reference, (q, k, v))


def test_maps_sum_to_one_and_self_counted_once():
    q, k = torch.randn(2, 4, 6, 5), torch.randn(2, 4, 6, 5)
    attn = criss_cross_attention_maps(q, k)
    assert attn.shape == (2, 6, 5, 6 + 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 6, 5))
    col = attn[..., :6]
    diag = torch.diagonal(col, dim1=1, dim2=3)  # [b, w, h] entries where h' == h
    assert torch.all(diag == 0)


def test_dispatch_uses_reference_on_cpu():
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 5, 3, 4)
    torch.testing.assert_close(criss_cross_attention(q, k, v), criss_cross_attention_reference(q, k, v))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="v .* must share"):
        criss_cross_attention(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 5, 3, 5))
    with pytest.raises(ValueError, match="expects q, k"):
        criss_cross_attention(torch.randn(1, 2, 3, 4), torch.randn(1, 3, 3, 4), torch.randn(1, 5, 3, 4))


def test_module_is_identity_at_init_and_learns():
    m = CrissCrossAttention(16)
    assert m.query_conv.out_channels == 2 and m.value_conv.out_channels == 16
    x = torch.randn(2, 16, 5, 7)
    torch.testing.assert_close(m(x), x)
    m.gamma.data.fill_(0.5)
    q, k, v = m.qkv(x)
    torch.testing.assert_close(m(x), 0.5 * dense_criss_cross(q, k, v) + x, atol=1e-5, rtol=1e-5)
