"""Other projects' criss-cross attention, run beside ours: outputs compared first, then timed.

mmcv 2.x ships CCNet's module as pure PyTorch (``mmcv.ops.CrissCrossAttention``,
einsum over the row and column energies). mmcv-lite has no compiled extension,
but importing ``mmcv.ops`` loads one, so :func:`stub_mmcv_ext` puts a stand-in
module at ``mmcv._ext`` first; the criss-cross module never calls it. Install::

    pip install -e ".[interop]"
    pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7

(``--no-deps``: both ask for opencv-python, which would shadow the headless
OpenCV this package uses.)
"""
import torch

from ..errors import MissingFileError
from ..interop.mmcv_stub import INSTALL, stub_mmcv_ext
from ..ops import CrissCrossAttention
from .benchmark import Case, _ImplScope


def mmcv_criss_cross(channels: int):
    """mmcv's CCNet module, or a one-line error saying how to install it."""
    try:
        stub_mmcv_ext()
        from mmcv.ops import CrissCrossAttention as MmcvCrissCross
    except ImportError as err:
        raise MissingFileError(f"--peers mmcv: mmcv is not importable ({err}); install it with: {INSTALL}") from None
    return MmcvCrissCross(channels)


def copy_to_mmcv(ours: CrissCrossAttention, theirs) -> None:
    """Give mmcv's module our weights: the three 1x1 convolutions and gamma (its ``Scale``)."""
    for name in ("query_conv", "key_conv", "value_conv"):
        getattr(theirs, name).load_state_dict(getattr(ours, name).state_dict())
    with torch.no_grad():
        theirs.gamma.scale.copy_(ours.gamma.reshape(()))


def check_same(ours, theirs, x: torch.Tensor, tol: float = 1e-4) -> float:
    """Largest difference of outputs and input gradients, relative to their size; an error past ``tol``."""
    worst = 0.0
    for impl in ("lean", "reference"):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        a, b = _ImplScope(ours, impl)(xa), theirs(xb)
        grad = torch.randn_like(a)
        a.backward(grad)
        b.backward(grad)
        for u, v in ((a, b), (xa.grad, xb.grad)):
            worst = max(worst, float((u - v).abs().max().detach() / v.abs().max().detach().clamp(min=1e-12)))
    if worst > tol:
        raise AssertionError(f"mmcv's criss-cross module differs from ours by {worst:.2e} (relative)")
    return worst


def peer_cases(channels=512, height=97, width=97, batch=2):
    """The whole RCCA module (q/k/v convs, op, gamma, residual) as ours (lean, reference) and as mmcv's."""
    ours = CrissCrossAttention(channels)
    with torch.no_grad():
        ours.gamma.fill_(0.5)  # let the attention count
    theirs = mmcv_criss_cross(channels)
    copy_to_mmcv(ours, theirs)
    check_same(ours, theirs, torch.randn(1, channels, 9, 11))

    def inputs():
        return (torch.randn(batch, channels, height, width),)

    return [Case("peer", "RCCA module: segattn (lean)", _ImplScope(ours, "lean"), inputs),
            Case("peer", "RCCA module: segattn (reference)", _ImplScope(ours, "reference"), inputs),
            Case("peer", "RCCA module: mmcv 2.1.0", theirs, inputs)]
