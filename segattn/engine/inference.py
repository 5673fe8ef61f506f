"""Inference on whole images: whole-image or sliding-window, multi-scale and flip averaging.

All functions take a normalised batch ``(B, 3, H, W)``. ``scale_logits`` returns
one pass's logits ``(B, K, H, W)``; ``predict_probs`` and ``predict_from_config``
return class probabilities (the softmax of each pass, averaged over scales and
flips), at the input size unless ``out_size`` says otherwise.
"""
import math

import torch
import torch.nn.functional as F


def _logits(model, x):
    return model(x)["main"]


def slide_logits(model, x, crop, stride):
    """Sliding-window logits, as mmsegmentation's ``slide_inference``: overlapping windows averaged."""
    b, _, h, w = x.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    sh, sw = min(stride[0], ch), min(stride[1], cw)
    rows = max(math.ceil((h - ch) / sh), 0) + 1
    cols = max(math.ceil((w - cw) / sw), 0) + 1
    out, count = None, torch.zeros((1, 1, h, w), device=x.device)
    for r in range(rows):
        for c in range(cols):
            y0, x0 = min(r * sh, h - ch), min(c * sw, w - cw)
            logits = _logits(model, x[:, :, y0:y0 + ch, x0:x0 + cw])
            if out is None:
                out = torch.zeros((b, logits.shape[1], h, w), device=x.device, dtype=torch.float32)
            out[:, :, y0:y0 + ch, x0:x0 + cw] += logits.float()
            count[:, :, y0:y0 + ch, x0:x0 + cw] += 1
    return out / count


def scaled_size(h: int, w: int, scale: float):
    """``floor(side * scale)`` as ``F.interpolate(scale_factor=)`` gives, but never below 1 (a 1x1 image at 0.5)."""
    return max(1, math.floor(h * scale)), max(1, math.floor(w * scale))


@torch.no_grad()
def scale_logits(model, x, scale=1.0, mode="whole", crop=(769, 769), stride=(513, 513), flipped=False,
                 out_size=None):
    """Logits ``(B, K, H, W)`` from one pass at ``scale`` (mirrored if ``flipped``), at ``out_size``.

    ``out_size`` defaults to the input's; a different one (the label size of an
    image that was rescaled before inference) is reached with the model's own
    ``align_corners``, as mmsegmentation resizes its logits back.
    """
    h, w = x.shape[-2:]
    out_size = tuple(out_size or (h, w))
    if scale != 1.0:
        x = F.interpolate(x, size=scaled_size(h, w, scale), mode="bilinear", align_corners=False)
    if flipped:
        x = x.flip(-1)
    logits = slide_logits(model, x, crop, stride) if mode == "slide" else _logits(model, x).float()
    if flipped:
        logits = logits.flip(-1)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    if out_size != (h, w):
        logits = F.interpolate(logits, size=out_size, mode="bilinear",
                               align_corners=getattr(model, "align_corners", False))
    return logits


@torch.no_grad()
def predict_probs(model, x, mode="whole", crop=(769, 769), stride=(513, 513), scales=(1.0,), flip=False,
                  out_size=None):
    """Softmax of each pass's logits (at ``out_size``, default the input's), averaged over ``scales`` and flips."""
    total = None
    for scale in scales:
        for flipped in ((False, True) if flip else (False,)):
            probs = scale_logits(model, x, scale, mode, crop, stride, flipped, out_size).softmax(1)
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))


def predict_from_config(model, x, eval_cfg, out_size=None):
    return predict_probs(model, x, eval_cfg.mode, tuple(eval_cfg.crop_size), tuple(eval_cfg.stride),
                         tuple(eval_cfg.scales), eval_cfg.flip, out_size)
