"""Benchmark-only copies of two peers' criss-cross *ops*, to time them beside ours op against op.

Neither peer ships its op as a function: mmcv computes it inline in
``CrissCrossAttention.forward``, between the 1x1 convolutions and ``gamma``,
and the official CCNet code (not on PyPI) does the same in its own module,
building its diagonal mask with ``.cuda()``. So each function below repeats the
peer's sequence of tensor operations from q, k, v to the attended output, and
nothing else: same einsums or bmms, same materialised -inf diagonal, same
concatenation and softmax, same relaid copies, so its time and the memory it
keeps for backward are the peer's. Tests hold both to the real thing: the mmcv
copy to mmcv's own module run with its convolutions replaced by the given
q, k, v (``gamma`` 1, x 0), the official copy to our reference op.

* :func:`mmcv_op`: mmcv 2.1.0 (tag v2.1.0 on PyPI as mmcv-lite 2.1.0),
  ``mmcv/ops/cc_attention.py``, ``CrissCrossAttention.forward``; Apache-2.0.
* :func:`official_op`: github.com/speedinghzl/CCNet, master branch, revision
  1fae6c67229c3863232494762b0afd9a8d7ff309 (the pure-python merge, 2021-02-07),
  ``cc_attention/functions.py``, ``CrissCrossAttention.forward`` (which credits
  Serge-weihao/CCNet-Pure-Pytorch); MIT. Only change: the -inf diagonal is built
  on q's device instead of with ``.cuda()``, so it runs on a CPU.
"""
import torch
import torch.nn.functional as F

MMCV_ORIGIN = "mmcv 2.1.0 (einsum), benchmark copy"
OFFICIAL_ORIGIN = "official CCNet (speedinghzl/CCNet@1fae6c6), benchmark copy"


def mmcv_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """mmcv 2.1.0's criss-cross attention from q, k, v: einsum energies, concatenated softmax, einsum outputs."""
    h = q.shape[2]
    neg_inf_diag = torch.diag(torch.tensor(float("-inf")).to(q.device).repeat(h), 0)
    energy_h = torch.einsum("bchw,bciw->bwhi", q, k) + neg_inf_diag
    energy_h = energy_h.transpose(1, 2)
    energy_w = torch.einsum("bchw,bchj->bhwj", q, k)
    attn = F.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)  # [B, H, W, H + W]
    out = torch.einsum("bciw,bhwi->bchw", v, attn[..., :h])
    out += torch.einsum("bchj,bhwj->bchw", v, attn[..., h:])
    return out


def official_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The official CCNet pure-PyTorch op from q, k, v: per-line bmms over relaid copies, one softmax."""
    b, _, h, w = q.shape
    q_h = q.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h).permute(0, 2, 1)
    q_w = q.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w).permute(0, 2, 1)
    k_h = k.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h)
    k_w = k.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w)
    v_h = v.permute(0, 3, 1, 2).contiguous().view(b * w, -1, h)
    v_w = v.permute(0, 2, 1, 3).contiguous().view(b * h, -1, w)
    inf = -torch.diag(torch.tensor(float("inf"), device=q.device).repeat(h), 0).unsqueeze(0).repeat(b * w, 1, 1)
    energy_h = (torch.bmm(q_h, k_h) + inf).view(b, w, h, h).permute(0, 2, 1, 3)
    energy_w = torch.bmm(q_w, k_w).view(b, h, w, w)
    attn = torch.softmax(torch.cat([energy_h, energy_w], 3), dim=3)
    att_h = attn[:, :, :, 0:h].permute(0, 2, 1, 3).contiguous().view(b * w, h, h)
    att_w = attn[:, :, :, h:h + w].contiguous().view(b * h, w, w)
    out_h = torch.bmm(v_h, att_h.permute(0, 2, 1)).view(b, w, -1, h).permute(0, 2, 3, 1)
    out_w = torch.bmm(v_w, att_w.permute(0, 2, 1)).view(b, h, -1, w).permute(0, 2, 1, 3)
    return out_h + out_w
