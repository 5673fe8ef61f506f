"""The memory-lean op against the reference and a dense masked attention: values, gradients, memory kept."""
import pytest
import torch

from segattn.analysis.benchmark import saved_activation_bytes
from segattn.ops.lean import criss_cross_attention_lean
from segattn.ops.reference import criss_cross_attention_reference
from ops.test_reference import SHAPES, dense_criss_cross


@pytest.mark.parametrize("b,cq,c,h,w", SHAPES)
def test_lean_matches_dense_value_and_grad(b, cq, c, h, w):
    q, k, v = (torch.randn(b, n, h, w, dtype=torch.float64, requires_grad=True) for n in (cq, cq, c))
    out = criss_cross_attention_lean(q, k, v)
    ref = dense_criss_cross(q, k, v)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    for a, r in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5, 6), (1, 2, 3, 1, 7), (2, 4, 2, 6, 1), (1, 3, 3, 1, 1), (1, 5, 6, 9, 7)])
def test_gradcheck_float64_odd_shapes(shape):
    b, cq, c, h, w = shape
    q, k = (torch.randn(b, cq, h, w, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(b, c, h, w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(criss_cross_attention_lean, (q, k, v))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_lean_matches_reference_in_low_precision(dtype, tol):
    q, k = (torch.randn(2, 8, 11, 13) for _ in range(2))
    v = torch.randn(2, 16, 11, 13)
    a = criss_cross_attention_lean(*(t.to(dtype) for t in (q, k, v))).float()
    r = criss_cross_attention_reference(q, k, v)
    assert (a - r).abs().max() <= tol * r.abs().max()


def test_keeps_only_per_pixel_statistics_for_backward():
    """B=2, Cq=64, C=512, 97x97 (the benchmark's shape): beyond q, k, v, only a (B, H, W) float32 tensor is kept."""
    b, h, w = 2, 97, 97
    q, k = (torch.randn(b, 64, h, w, requires_grad=True) for _ in range(2))
    v = torch.randn(b, 512, h, w, requires_grad=True)

    class Op(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, *args):
            return self.fn(*args)

    inputs = {t.untyped_storage().data_ptr() for t in (q, k, v)}
    lean = saved_activation_bytes(Op(criss_cross_attention_lean), (q, k, v), exclude=inputs)
    reference = saved_activation_bytes(Op(criss_cross_attention_reference), (q, k, v), exclude=inputs)
    assert lean == b * h * w * 4  # the log-sum-exp
    assert lean <= 5 * 2**20 and reference > 100 * 2**20


def test_module_inference_path_equals_the_autograd_path():
    from segattn.ops import CrissCrossAttention

    m = CrissCrossAttention(300)  # not a multiple of the channel chunk
    m.gamma.data.fill_(0.7)
    x = torch.randn(2, 300, 9, 13)
    with torch.no_grad():
        lean = m(x)  # chunked value projection, no autograd
    torch.testing.assert_close(lean, m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_module_inference_path_under_bf16_autocast(input_dtype):
    """Inference wrapped in torch.autocast (as a user's loop may be): the value projection takes the features'
    dtype, as the convolution it replaces would, instead of failing on float32 weights against bf16 features."""
    from segattn.ops import CrissCrossAttention

    m = CrissCrossAttention(64)
    m.gamma.data.fill_(0.7)
    x = torch.randn(2, 64, 9, 13).to(input_dtype)
    with torch.no_grad():
        expected = m.float()(x.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)


def test_rcca_needs_eleven_times_less_inference_memory_than_non_local():
    """The CCNet paper's comparison at its scale (512 x 97 x 97, R = 2) against its dense Non-local block, on this CPU."""
    from segattn.analysis.benchmark import peak_cpu_bytes
    from segattn.analysis.cases import Repeat
    from segattn.models.attention.non_local import NonLocalBlock
    from segattn.ops import CrissCrossAttention

    x = torch.randn(1, 512, 97, 97)
    peaks = {}
    for name, block in (("rcca", Repeat(CrissCrossAttention(512), 2)), ("nonlocal", NonLocalBlock(512, impl="dense"))):
        with torch.no_grad():
            peaks[name] = peak_cpu_bytes(lambda: block(x))
    assert peaks["nonlocal"] >= 11 * peaks["rcca"], peaks


@pytest.mark.parametrize("whole_batch", [False, True])
def test_both_pass_plans_match_dense(monkeypatch, whole_batch):
    """One image a pass (CPUs) and the whole batch a pass (GPUs), with a channel count that leaves a partial
    chunk: values and gradients against the dense reference, and the module's inference path against autograd."""
    from segattn.ops import CrissCrossAttention, lean

    if whole_batch:
        monkeypatch.setattr(lean, "_images_per_pass", lambda t: t.shape[0])
    b, cq, c, h, w = 3, 4, lean.CHUNK + 6, 7, 9
    q, k, v = (torch.randn(b, n, h, w, dtype=torch.float64, requires_grad=True) for n in (cq, cq, c))
    out, ref = criss_cross_attention_lean(q, k, v), dense_criss_cross(q, k, v)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad)
    for a, r in zip(grads, torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, r)
    # channels-last results, the layout the op computes in (docs/criss_cross.md)
    assert all(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in (out, *grads))
    m = CrissCrossAttention(c).double()
    m.gamma.data.fill_(0.7)
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    with torch.no_grad():
        inference = m(x)
    torch.testing.assert_close(inference, m(x))
