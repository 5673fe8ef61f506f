"""How far a head sees: accuracy on the context probe split by where the key lies.

``reach_accuracy(model, cfg)`` runs the probe's validation split through a
trained model (the ``eval`` section's inference) and counts, over object pixels
only (the key's own pixels excluded: they are told locally), the share whose
predicted class is the key's, separately where the pixel shares a row or a
column of cells with the key and elsewhere (:func:`segattn.data.context_probe.
key_buckets`). Chance is one in four: a head that finds the objects but not
the key guesses among the four key colours.

``pair_accuracy(model, cfg)`` does the same on the two-key probe
(:mod:`segattn.data.context_probe_pairs`): the share of object pixels given the
class of the key whose band they lie in (a global summary: 50% at best; the
FCN 25%).

``receptive_field(model, radius)`` measures how far an output pixel sees: the
extent of the input pixels on which the gradient of the output pixel's logits
is not zero, over every position of the pixel within an 8-pixel cell (the
exact support), and the share of that gradient farther than ``radius`` (the
effective receptive field's view: most of a deep network's support carries
almost none of its gradient). ``out_of_reach`` counts the object pixels whose
key lies beyond a reach.
"""
import copy

import numpy as np
import torch

from ..data import build_dataset
from ..data.context_probe import CELL, ELSEWHERE, ROW_COLUMN, key_buckets
from ..engine.inference import predict_from_config

BUCKETS = {"row_column": ROW_COLUMN, "elsewhere": ELSEWHERE}


def _val_predictions(model, cfg, device, max_images, keys: str):
    """``(predicted labels, label, the sample's keys)`` of each val image, as the ``eval`` section infers; ``keys``:
    the dataset's method giving a sample's key box(es)."""
    dataset = build_dataset(cfg.data, cfg.data.val_split)
    model.eval()
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n):
        image, mask, _, _ = dataset[i]
        probs = predict_from_config(model, image[None].to(device), cfg.eval, mask.shape[-2:])
        yield probs.argmax(1)[0].cpu().numpy(), mask.numpy(), getattr(dataset, keys)(i)


@torch.no_grad()
def reach_accuracy(model, cfg, device="cpu", max_images=None) -> dict:
    """``{"row_column": acc, "elsewhere": acc, "pixels": {bucket: count}, "images": n}`` on the val split."""
    correct = {name: 0 for name in BUCKETS}
    total = {name: 0 for name in BUCKETS}
    n = 0
    for n, (pred, label, keys) in enumerate(_val_predictions(model, cfg, device, max_images, "key_box"), start=1):
        buckets = key_buckets(label, keys)
        for name, value in BUCKETS.items():
            where = buckets == value
            correct[name] += int((pred[where] == label[where]).sum())
            total[name] += int(where.sum())
    out = {name: correct[name] / total[name] if total[name] else float("nan") for name in BUCKETS}
    out.update(pixels=total, images=n)
    return out


@torch.no_grad()
def pair_accuracy(model, cfg, device="cpu", max_images=None) -> dict:
    """``{"objects": acc, "pixels": count, "images": n}`` on the two-key probe's val split (object pixels, the
    keys' own left out)."""
    from ..data.context_probe_pairs import object_mask

    correct = total = n = 0
    for n, (pred, label, keys) in enumerate(_val_predictions(model, cfg, device, max_images, "key_boxes"), start=1):
        scored = object_mask(label, keys)
        correct += int((pred[scored] == label[scored]).sum())
        total += int(scored.sum())
    return {"objects": correct / total if total else float("nan"), "pixels": total, "images": n}


@torch.no_grad()
def open_paths(model):
    """Make every zero-initialised gate non-zero: attention gammas (CCNet, DANet) and all-zero weights (the
    Non-local block's output conv or norm) hide a path from a gradient measurement of an untrained model."""
    generator = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if name.endswith("gamma") or (name.endswith("weight") and not p.any()):
            if p.dim() == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.1)
    return model


def _centre_gradients(model, size, channels=3):
    """The gradient (|.| summed over channels, (H, W)) of each of the 64 output pixels of the centre cell."""
    model = open_paths(copy.deepcopy(model).eval().double())  # a copy: the caller's model keeps its gates
    x = torch.randn(1, channels, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_()
    out = model(x)
    out = out["main"] if isinstance(out, dict) else out
    c = size // 2 - (size // 2) % CELL
    for dy in range(CELL):
        for dx in range(CELL):
            grad, = torch.autograd.grad(out[0, :, c + dy, c + dx].sum(), x, retain_graph=True)
            yield c + dy, c + dx, grad.abs().sum(1)[0]


def out_of_reach(label: np.ndarray, key_box, reach: int) -> dict:
    """Object pixels (the key's own left out) whose key lies more than ``reach`` pixels away (L-infinity), and
    "elsewhere" pixels more than ``reach`` pixels from the key's rows and from its columns (the band one
    criss-cross loop sees): ``{"objects": (beyond, all), "elsewhere": (beyond, all)}``."""
    buckets = key_buckets(label, key_box)
    t, l, b, r = (int(v) for v in key_box)
    ys, xs = np.nonzero(buckets > 0)
    dy = np.maximum(0, np.maximum(t - ys, ys - (b - 1)))
    dx = np.maximum(0, np.maximum(l - xs, xs - (r - 1)))
    elsewhere = buckets[ys, xs] == ELSEWHERE
    return {"objects": (int((np.maximum(dy, dx) > reach).sum()), len(ys)),
            "elsewhere": (int((np.minimum(dy, dx)[elsewhere] > reach).sum()), int(elsewhere.sum()))}


def receptive_field(model, radius: int = None, size: int = 256, channels: int = 3) -> dict:
    """How far an output pixel's logits see: ``{"support": (up, down, left, right), "beyond": share}``.

    ``support``: how many input pixels above, below, left and right of the pixel its gradient is not zero (the
    exact receptive field); ``beyond``: the share of the gradient (absolute values) on input pixels more than
    ``radius`` pixels away (L-infinity; the effective receptive field's view). Each is the worst over the 64
    positions of a pixel in its 8-pixel cell, measured in float64 in eval mode (batch-norm statistics fixed)
    about the image centre, so that no border clips it, with every zero-initialised gate opened
    (:func:`open_paths`) on a copy of ``model``.
    """
    reach, beyond = np.zeros(4, int), 0.0
    yy, xx = np.mgrid[0:size, 0:size]
    for y, x, grad in _centre_gradients(model, size, channels):
        rows, cols = (grad > 0).nonzero(as_tuple=True)
        reach = np.maximum(reach, [y - int(rows.min()), int(rows.max()) - y, x - int(cols.min()), int(cols.max()) - x])
        if radius is not None:
            far = torch.from_numpy(np.maximum(abs(yy - y), abs(xx - x)) > radius)
            beyond = max(beyond, float(grad[far].sum() / grad.sum()))
    return {"support": tuple(int(v) for v in reach), "beyond": beyond if radius is not None else None}
