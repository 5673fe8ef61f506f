"""The colour-only floor: what a per-pixel classifier that sees no context reaches.

A stack of 1x1 convolutions (an MLP on each pixel's RGB) trained on pixels
sampled from the training split, scored with the same confusion matrix on the
validation split. A context model must beat it by a wide margin; the demo data
is built so that it can.
"""
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..engine.metrics import ConfusionMatrix


def colour_only_model(num_classes: int, hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                         nn.Conv2d(hidden, num_classes, 1))


def _pixels(dataset, per_image: int, rng, ignore_index: int):
    xs, ys = [], []
    for i in range(len(dataset)):
        image, mask = dataset.load(i)[:2]
        keep = np.flatnonzero(mask.reshape(-1) != ignore_index)
        pick = rng.choice(keep, size=min(per_image, keep.size), replace=False)
        xs.append(image.reshape(-1, 3)[pick])
        ys.append(mask.reshape(-1)[pick])
    return torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.from_numpy(np.concatenate(ys)).long()


def colour_only_floor(train_set, val_set, num_classes: int, ignore_index: int = 255, steps: int = 2000,
                      per_image: int = 2000, seed: int = 0, progress: bool = True) -> dict:
    """Train the colour-only classifier; return val metrics (``mIoU`` etc.)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x, y = _pixels(train_set, per_image, rng, ignore_index)
    model = colour_only_model(num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in tqdm(range(steps), desc="colour-only classifier", disable=not progress):
        idx = torch.randint(0, len(x), (4096,))
        logits = model(x[idx].T[None, :, :, None])[0, :, :, 0].T
        loss = nn.functional.cross_entropy(logits, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    cm = ConfusionMatrix(num_classes, ignore_index)
    with torch.no_grad():
        for i in range(len(val_set)):
            image, mask = val_set.load(i)[:2]
            inp = torch.from_numpy(image).float().permute(2, 0, 1)[None] / 255.0
            cm.update(torch.from_numpy(mask), model(inp).argmax(1)[0])
    return cm.compute()
