#!/usr/bin/env python
"""Other projects' criss-cross attention, run beside ours: outputs compared first, then timed.

    python benchmarks/op_peers.py --batch 2 --repeats 5     # B=2, Cq=64, C=512, 97 x 97, float32, CPU

Two levels: the whole RCCA module (mmcv's own, given our weights) and the bare
op from q, k, v (mmcv's and the official CCNet op as benchmark-only copies,
:mod:`peer_ops` beside this script, each checked against the real thing first), with our lean and reference
ops and modules.

mmcv 2.x ships CCNet's module as pure PyTorch (``mmcv.ops.CrissCrossAttention``,
einsum over the row and column energies). mmcv-lite has no compiled extension,
but importing ``mmcv.ops`` loads one, so :func:`stub_mmcv_ext` puts a stand-in
module at ``mmcv._ext`` first; the criss-cross module never calls it. Install::

    pip install -e ".[interop]"
    pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7

(``--no-deps``: both ask for opencv-python, which would shadow the headless
OpenCV this package uses.)
"""
import argparse
from copy import deepcopy
import sys

import torch
from torch import nn

from _common import add_common_args, write_results
from peer_ops import MMCV_ORIGIN, OFFICIAL_ORIGIN, mmcv_op, official_op
from segattn.analysis.benchmark import Case, markdown_table, measure
from segattn.analysis.cases import Op, attention_cases
from segattn.errors import MissingPackageError
from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext
from segattn.ops import CrissCrossAttention, set_impl
from segattn.ops.reference import criss_cross_attention_reference


def mmcv_criss_cross(channels: int):
    """mmcv's CCNet module, or a one-line error saying how to install it."""
    try:
        stub_mmcv_ext()
        from mmcv.ops import CrissCrossAttention as MmcvCrissCross
    except ImportError as err:
        raise MissingPackageError(f"mmcv is not importable ({err}); install it with: {INSTALL}") from None
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
        a, b = set_impl(ours, impl)(xa), theirs(xb)
        grad = torch.randn_like(a)
        a.backward(grad)
        b.backward(grad)
        for u, v in ((a, b), (xa.grad, xb.grad)):
            worst = max(worst, float((u - v).abs().max().detach() / v.abs().max().detach().clamp(min=1e-12)))
    if worst > tol:
        raise AssertionError(f"mmcv's criss-cross module differs from ours by {worst:.2e} (relative)")
    return worst


class _Given(nn.Module):
    """Stands in for a 1x1 convolution: returns the tensor it was given, whatever its input."""

    def __init__(self, tensor: torch.Tensor):
        super().__init__()
        self.tensor = tensor

    def forward(self, x):
        return self.tensor


def mmcv_module_op(q, k, v):
    """mmcv's own module computing the op alone: convolutions replaced by q, k, v, gamma 1, residual 0."""
    theirs = mmcv_criss_cross(max(8, v.shape[1]))  # its convolutions are replaced: any width builds
    for name, t in (("query_conv", q), ("key_conv", k), ("value_conv", v)):
        setattr(theirs, name, _Given(t))
    with torch.no_grad():
        theirs.gamma.scale.fill_(1.0)
    return theirs(torch.zeros_like(v))


def check_op_copies(shape=(2, 8, 16, 9, 11), tol: float = 1e-5) -> float:
    """The benchmark copies against the real thing, values and gradients: the mmcv copy against mmcv's own
    module (:func:`mmcv_module_op`), the official copy against our reference op. Largest relative difference;
    an AssertionError past ``tol``."""
    b, cq, c, h, w = shape
    q, k, v = (torch.randn(b, n, h, w, dtype=torch.float64, requires_grad=True) for n in (cq, cq, c))
    grad = torch.randn(b, c, h, w, dtype=torch.float64)
    worst = 0.0
    for name, copy, real in (("mmcv", mmcv_op, mmcv_module_op),
                             ("official", official_op, criss_cross_attention_reference)):
        a, r = copy(q, k, v), real(q, k, v)
        grads = zip(torch.autograd.grad(a, (q, k, v), grad), torch.autograd.grad(r, (q, k, v), grad))
        pairs = [(a.detach(), r.detach()), *grads]
        err = max(float((x - y).abs().max() / y.abs().max().clamp(min=1e-12)) for x, y in pairs)
        if err > tol:
            raise AssertionError(f"the {name} op copy differs from {real.__name__} by {err:.2e} (relative)")
        worst = max(worst, err)
    return worst


def peer_cases(channels=512, height=97, width=97, batch=2):
    """The peers' ops (benchmark copies, checked first) from q, k, v, and the whole RCCA module (q/k/v convs, op,
    gamma, residual) as ours (lean, reference) and as mmcv's."""
    check_op_copies()
    qk = channels // 8

    def op_inputs():
        return (torch.randn(batch, qk, height, width), torch.randn(batch, qk, height, width),
                torch.randn(batch, channels, height, width))

    ours = CrissCrossAttention(channels)
    with torch.no_grad():
        ours.gamma.fill_(0.5)  # let the attention count
    theirs = mmcv_criss_cross(channels)
    copy_to_mmcv(ours, theirs)
    check_same(ours, theirs, torch.randn(1, channels, 9, 11))

    def inputs():
        return (torch.randn(batch, channels, height, width),)

    return [Case("op", MMCV_ORIGIN, Op(mmcv_op), op_inputs),
            Case("op", OFFICIAL_ORIGIN, Op(official_op), op_inputs),
            Case("peer", "RCCA module: segattn (lean)", set_impl(deepcopy(ours), "lean"), inputs),
            Case("peer", "RCCA module: segattn (reference)", set_impl(deepcopy(ours), "reference"), inputs),
            Case("peer", "RCCA module: mmcv 2.1.0", theirs, inputs)]


COLUMNS = [("group", "group"), ("name", "name"), ("fwd_ms", "fwd ms"), ("fwd_bwd_ms", "fwd+bwd ms"),
           ("act_mb", "saved act. MB"), ("infer_mb", "inference peak MB")]


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]))
    p.add_argument("--channels", type=int, default=512, help="C of v (q and k take C / 8)")
    p.add_argument("--size", type=int, nargs=2, default=[97, 97], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=2)
    args = p.parse_args(argv)
    h, w = args.size
    ours = [c for c in attention_cases(args.channels, h, w, args.batch) if c.name.startswith("criss-cross")]
    rows = []
    for case in ours + peer_cases(args.channels, h, w, args.batch):
        print(f"[cpu] {case.group} {case.name} ...", file=sys.stderr, flush=True)
        rows.append(measure(case, "cpu", args.repeats, args.warmup))
    table = markdown_table(rows, COLUMNS)
    print(f"\n### criss-cross op and module against mmcv and the official CCNet op, B={args.batch}, "
          f"C={args.channels}, {h} x {w}, float32\n\n{table}")
    write_results("op_peers", "cpu", rows, table, {"size": [h, w], "batch": args.batch}, args.output)


if __name__ == "__main__":
    sys.exit(main())
