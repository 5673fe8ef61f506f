"""segattn's PSANet mask op against mmcv's PSAMask CPU kernel (transliterated in tests/psamask_kernel.py)."""
import pytest
import torch
from psamask_kernel import psamask_backward, psamask_forward

from segattn.ops.psa_mask import psa_mask

# odd and even maps; windows smaller than the map, the over-complete (2H - 1) x (2W - 1) and larger ones
CASES = [(5, 7, 9, 13), (5, 7, 3, 5), (6, 4, 11, 7), (3, 3, 97, 97), (4, 5, 7, 9)]


def kernel(x, psa_type, mask_size):
    n, _, h, w = x.shape
    mh, mw = mask_size
    out = x.new_zeros(n, h * w, h, w)
    psamask_forward(x, out, 0 if psa_type == "collect" else 1, n, h, w, mh, mw, (mh - 1) // 2, (mw - 1) // 2)
    return out


@pytest.mark.parametrize("psa_type", ["collect", "distribute"])
@pytest.mark.parametrize("h,w,mh,mw", CASES)
def test_equals_mmcv_cpu_kernel_forward_and_backward(h, w, mh, mw, psa_type):
    x = torch.randn(2, mh * mw, h, w, dtype=torch.float64, requires_grad=True)
    out = psa_mask(x, psa_type, (mh, mw))
    assert torch.equal(out, kernel(x.detach(), psa_type, (mh, mw)))  # a copy of values: exactly equal
    grad = torch.randn_like(out)
    (ours,) = torch.autograd.grad(out, x, grad)
    theirs = torch.zeros_like(x)
    psamask_backward(grad, theirs, 0 if psa_type == "collect" else 1, 2, h, w, mh, mw, (mh - 1) // 2, (mw - 1) // 2)
    assert torch.equal(ours, theirs)


def test_collect_and_distribute_are_transposes_and_the_window_is_centred():
    x = torch.randn(1, 5 * 5, 4, 6)
    collect, distribute = psa_mask(x, "collect", (5, 5)), psa_mask(x, "distribute", (5, 5))
    torch.testing.assert_close(collect.reshape(1, 24, 24).transpose(1, 2), distribute.reshape(1, 24, 24))
    # position p = (1, 2) collects from q = (2, 4): offset (1, 2), window index (1 + 2, 2 + 2)
    assert collect[0, 2 * 6 + 4, 1, 2] == x[0, 3 * 5 + 4, 1, 2]
    assert collect[0, 3 * 6 + 5, 0, 0] == 0  # (3, 5) is outside (0, 0)'s 5 x 5 window


def test_a_wrong_channel_count_is_one_line():
    with pytest.raises(ValueError, match="24 channels for a 5 x 5 mask"):
        psa_mask(torch.randn(1, 24, 3, 3), "collect", (5, 5))
