"""PSANet's mask op: a point-wise attention over a ``mask_h x mask_w`` window, laid out over the whole map.

``x (N, mask_h * mask_w, H, W)`` holds, at each position p, one weight per
offset of a window centred on p (channel ``i * mask_w + j``: offset
``(i - (mask_h - 1) // 2, j - (mask_w - 1) // 2)``). ``psa_mask(x, "collect")``
returns ``(N, HW, H, W)`` with ``out[n, q, p] = x[n, offset(q - p), p]`` for every
q inside both the map and p's window, 0 elsewhere (what p collects from q);
``"distribute"`` the transpose, ``out[n, p, q]`` (what p sends to q). The
layout and values of mmcv's ``PSAMask`` (its CPU kernel, which
mmsegmentation's ``PSAHead`` calls; ``tests/ops/test_psa_mask.py`` holds this
to a transliteration of that kernel on odd sizes and windows smaller and
larger than the map). Written as two gathers, one per axis (the window row of
target row ``qy`` seen from ``py`` is ``qy - py + (mask_h - 1) // 2``), so it
runs on every device, autograd's backward is the kernel's, and an ONNX trace
keeps the sizes symbolic (GatherElements).
"""
import torch

PSA_TYPES = ("collect", "distribute")


def _window_index(size, mask: int):
    """``(size, size)``: ``[p, q]`` the window index of target q seen from p, and whether it is in the window."""
    position = torch.arange(size)
    index = position.unsqueeze(0) - position.unsqueeze(1) + (mask - 1) // 2   # q - p + half
    inside = (index >= 0) & (index < mask)
    return index.clamp(0, mask - 1), inside


def psa_mask(x: torch.Tensor, psa_type: str, mask_size) -> torch.Tensor:
    """``(N, mask_h * mask_w, H, W)`` -> ``(N, HW, H, W)``, as mmcv's PSAMask (see the module docstring)."""
    if psa_type not in PSA_TYPES:
        raise ValueError(f"psa_type must be one of {', '.join(PSA_TYPES)}, got {psa_type!r}")
    mask_h, mask_w = mask_size
    n, m, h, w = x.shape
    if m != mask_h * mask_w:
        raise ValueError(f"psa_mask: {m} channels for a {mask_h} x {mask_w} mask (needs {mask_h * mask_w})")
    x = x.reshape(n, mask_h, mask_w, h, w)
    rows, rows_in = _window_index(h, mask_h)                                  # [py, qy]
    cols, cols_in = _window_index(w, mask_w)                                  # [px, qx]
    rows, cols = rows.to(x.device), cols.to(x.device)
    # (n, qy, j, py, px) = x[n, rows[py, qy], j, py, px]
    index = rows.t().reshape(1, h, 1, h, 1).expand(n, h, mask_w, h, w)
    out = torch.where(rows_in.t().reshape(1, h, 1, h, 1).to(x.device), torch.gather(x, 1, index), 0.0)
    # (n, qy, qx, py, px) = out[n, qy, cols[px, qx], py, px]
    index = cols.t().reshape(1, 1, w, 1, w).expand(n, h, w, h, w)
    out = torch.where(cols_in.t().reshape(1, 1, w, 1, w).to(x.device), torch.gather(out, 2, index), 0.0)
    if psa_type == "distribute":
        out = out.permute(0, 3, 4, 1, 2)
    return out.reshape(n, h * w, h, w)
