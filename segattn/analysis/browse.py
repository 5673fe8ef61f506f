"""What the model will see: a grid of a split's images with their labels overlaid, as read or as augmented.

:func:`browse_samples` reads samples (optionally through the training
augmentation, seeded per sample) and keeps track of label values that are not
ids of the dataset (drawn as a black-and-white checkerboard, the sign of a
wrong label encoding); :func:`grid_figure` draws them with a legend of the
classes shown in the dataset's palette. mmsegmentation's ``browse_dataset.py``
answers the same question.
"""
from dataclasses import dataclass

import numpy as np

from ..data.io import output_file
from ..data.listed import unknown_pixels
from ..data.palette import colorize
from ..data.transforms import MEAN_255, STD_255
from .plots import class_handles

SENTINEL = 254  # carries unknown pixels through the augmentation (a value no class and not ignore uses)


@dataclass
class Sample:
    image: np.ndarray  # HxWx3 uint8 RGB, as read or augmented
    mask: np.ndarray  # HxW uint8 train ids (ignore where unlabelled or unknown)
    unknown: np.ndarray  # HxW bool: label values that are not ids of the dataset
    path: str


def _denormalize(x) -> np.ndarray:
    image = x.numpy().transpose(1, 2, 0) * np.array(STD_255, np.float32) + np.array(MEAN_255, np.float32)
    return np.clip(image.round(), 0, 255).astype(np.uint8)


def browse_samples(dataset, indices, transform=None, seed: int = 0, ignore_index: int = 255,
                   num_classes: int = 256):
    """``[Sample]`` for ``indices`` of ``dataset``; ``transform`` a training preset (each sample seeded)."""
    carry = num_classes <= SENTINEL and ignore_index != SENTINEL
    out = []
    for index in indices:
        image, mask, path, _ = dataset.load(index)
        unknown = unknown_pixels(dataset, index)
        unknown = np.zeros(mask.shape, bool) if unknown is None else unknown
        if transform is not None:
            mask = mask.copy()
            if carry:
                mask[unknown] = SENTINEL
            transform.pipeline.set_random_seed(seed + index)
            x, m = transform(image, mask)
            image, mask = _denormalize(x), m.numpy().astype(np.uint8)
            unknown = mask == SENTINEL if carry else np.zeros(mask.shape, bool)
            mask[unknown] = ignore_index
        out.append(Sample(image, mask, unknown, path))
    return out


def _checker(shape, size: int = 4) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (((yy // size) + (xx // size)) % 2 * 255).astype(np.uint8)


def draw(sample: Sample, palette, ignore_index: int = 255, alpha: float = 0.5) -> np.ndarray:
    """The image with its labels in the palette (ignore left bare) and unknown values as a checkerboard."""
    colour = colorize(sample.mask, palette).astype(np.float32)
    out = sample.image.astype(np.float32)
    labelled = (sample.mask != ignore_index)[..., None]
    out = np.where(labelled, out * (1 - alpha) + colour * alpha, out)
    out[sample.unknown] = _checker(sample.mask.shape)[sample.unknown][:, None]
    return out.round().astype(np.uint8)


def grid_columns(n: int, columns: int = 4) -> int:
    """How many columns ``n`` samples take: all in one row up to ``columns``, else ``columns`` or one fewer,
    whichever leaves fewer cells empty (6 samples: 3 x 2, not 4 + 2)."""
    if n <= columns:
        return max(1, n)
    return min((columns, columns - 1), key=lambda c: (-n % c, -c))


def grid_figure(samples, class_names, palette, path: str, title: str, ignore_index: int = 255, columns: int = 4):
    """The samples in a grid, file names as titles, and a legend of the classes present (and unknown values)."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = grid_columns(len(samples), columns)
    rows = (len(samples) + columns - 1) // columns
    h, w = samples[0].image.shape[:2]
    cell = 4.0
    fig, axes = plt.subplots(rows, columns, figsize=(cell * columns, (cell * h / w + 0.45) * rows + 1.2), squeeze=False)
    for ax, sample in zip(axes.flat, samples):
        ax.imshow(draw(sample, palette, ignore_index))
        note = f" ({int(sample.unknown.sum())} unknown px)" if sample.unknown.any() else ""
        ax.set_title(os.path.basename(sample.path)[:40] + note, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    present = sorted({int(c) for s in samples for c in np.unique(s.mask) if c < len(class_names)})
    handles = class_handles(present, class_names, palette)
    if any(s.unknown.any() for s in samples):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="xxxx", label="not an id of the dataset"))
    fig.suptitle(title, fontsize=10)
    fig.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.02 + 0.035 * ((len(handles) + 5) // 6), 1, 0.97))
    with output_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


__all__ = ["Sample", "browse_samples", "draw", "grid_columns", "grid_figure"]
