"""mmcv's CCNet module (the real package, installed without its compiled extension) against ours."""
import pytest
import torch

pytest.importorskip("mmcv", reason='mmcv-lite is an optional peer: pip install -e ".[interop]" && '
                                   "pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7")

from segattn.analysis.benchmark import measure  # noqa: E402
from segattn.analysis.peers import check_same, copy_to_mmcv, mmcv_criss_cross, peer_cases  # noqa: E402
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
    assert [r["name"] for r in rows] == ["RCCA module: segattn (lean)", "RCCA module: segattn (reference)",
                                         "RCCA module: mmcv 2.1.0"]
    assert all(r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in rows)
