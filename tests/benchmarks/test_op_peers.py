"""mmcv's CCNet module (the real package, installed without its compiled extension) against ours."""
import pytest
import torch

pytest.importorskip("mmcv", reason='mmcv-lite is an optional peer: pip install -e ".[interop]" && '
                                   "pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7")

import op_peers as peers  # noqa: E402
from op_peers import check_op_copies, check_same, copy_to_mmcv, mmcv_criss_cross, peer_cases  # noqa: E402
from peer_ops import official_op  # noqa: E402
from segattn.analysis.benchmark import measure  # noqa: E402
from segattn.ops import CrissCrossAttention  # noqa: E402


@pytest.mark.parametrize("shape", [(2, 32, 7, 9), (1, 16, 1, 5), (1, 24, 6, 1)])
def test_mmcv_module_equals_ours_with_the_same_weights(shape):
    b, c, h, w = shape
    ours = CrissCrossAttention(c)
    with torch.no_grad():
        ours.gamma.fill_(0.8)
    theirs = mmcv_criss_cross(c)
    copy_to_mmcv(ours, theirs)
    assert check_same(ours, theirs, torch.randn(b, c, h, w), tol=1e-5) <= 1e-5
    with torch.no_grad():
        theirs.gamma.scale.fill_(0.3)  # a different module must be caught
    with pytest.raises(AssertionError, match="differs from ours"):
        check_same(ours, theirs, torch.randn(b, c, h, w), tol=1e-5)


def test_peer_rows_are_measured():
    rows = [measure(case, "cpu", repeats=1, warmup=0) for case in peer_cases(16, 9, 11, batch=1)]
    assert [r["name"] for r in rows] == [peers.MMCV_ORIGIN, peers.OFFICIAL_ORIGIN, "RCCA module: segattn (lean)",
                                         "RCCA module: segattn (reference)", "RCCA module: mmcv 2.1.0"]
    assert [r["group"] for r in rows[:2]] == ["op", "op"]
    assert all(r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in rows)


@pytest.mark.parametrize("shape", [(2, 8, 16, 9, 11), (1, 4, 6, 1, 7), (1, 4, 6, 5, 1)])
def test_op_copies_equal_mmcv_itself_and_the_reference(shape):
    """mmcv's copy against mmcv's own module (convolutions replaced by the given q, k, v), the official copy
    against our reference: values and the three gradients, float64."""
    assert check_op_copies(shape, tol=1e-10) <= 1e-10


def test_a_wrong_op_copy_is_caught(monkeypatch):
    def unmasked(q, k, v):  # the self position counted twice: what the -inf diagonal prevents
        h = q.shape[2]
        e = torch.cat([torch.einsum("bchw,bciw->bhwi", q, k), torch.einsum("bchw,bchj->bhwj", q, k)], -1).softmax(-1)
        return torch.einsum("bciw,bhwi->bchw", v, e[..., :h]) + torch.einsum("bchj,bhwj->bchw", v, e[..., h:])

    assert float((unmasked(*(torch.randn(1, 4, 5, 6) for _ in range(3)))).abs().sum()) > 0
    monkeypatch.setattr(peers, "official_op", unmasked)
    with pytest.raises(AssertionError, match="official op copy differs"):
        check_op_copies()
    monkeypatch.setattr(peers, "official_op", official_op)
    monkeypatch.setattr(peers, "mmcv_op", unmasked)
    with pytest.raises(AssertionError, match="mmcv op copy differs"):
        check_op_copies()
