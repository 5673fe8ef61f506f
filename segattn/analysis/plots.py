"""Pictures of evaluation results: the confusion matrix (rows normalised) and the per-class IoU bars.

Both take what ``tools/eval.py`` computed (the ``[ground truth][prediction]``
pixel counts, the metrics dict) and write a PNG with the class names on it.
"""
import numpy as np

from ..data.io import output_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def class_handles(class_ids, class_names, palette):
    """Legend entries (matplotlib patches) of ``class_ids`` in their palette colours."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=np.array(palette[c]) / 255, edgecolor="black", label=class_names[c])
            for c in class_ids if c < len(class_names)]


def confusion_figure(counts, class_names, path: str, title: str = "confusion matrix"):
    """Each ground-truth row divided by its pixels (a class absent from the ground truth: an empty row)."""
    plt = _pyplot()
    counts = np.asarray(counts, np.float64)
    k = len(class_names)
    totals = counts.sum(1, keepdims=True)
    rows = np.divide(counts, totals, out=np.full_like(counts, np.nan), where=totals > 0)
    # 0.42 in a class up to 30 classes (room for the percentages); above, the side stops at 20 in (2400 px at
    # 120 dpi): 150 or 171 classes at 0.42 in would be a 9000 px picture that takes 20 s to draw
    size = min(max(6.0, 0.42 * k + 2), 20.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(100 * rows, cmap="Blues", vmin=0, vmax=100)  # in %, as the cells and the colour bar read
    ticks = range(k)
    small = 8 if k <= 30 else 5 if k <= 100 else 4
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=small)
    ax.set_yticks(ticks, class_names, fontsize=small)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{title} (each row: share of that class's pixels)", fontsize=10)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if rows[i, j] >= 0.005:
                    ax.text(j, i, f"{100 * rows[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("% of the ground-truth class's pixels")
    fig.tight_layout()
    with output_file(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def iou_figure(metrics: dict, class_names, path: str, title: str = "per-class IoU"):
    """One bar per class (IoU in %), the mIoU as a dashed line; classes without an IoU are marked n/a."""
    plt = _pyplot()
    iou = np.array([np.nan if v is None else v for v in metrics["IoU"]], np.float64) * 100
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * k + 1)))
    y = np.arange(k)[::-1]
    ax.barh(y, np.nan_to_num(iou), color="tab:blue")
    for yi, v in zip(y, iou):
        ax.text(0.5 if np.isnan(v) else v + 0.5, yi, "n/a" if np.isnan(v) else f"{v:.1f}", va="center", fontsize=7)
    ax.axvline(100 * metrics["mIoU"], color="tab:red", ls="--", lw=1, label=f"mIoU {100 * metrics['mIoU']:.2f}")
    ax.set_yticks(y, class_names, fontsize=8)
    ax.set_xlim(0, 105)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with output_file(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


__all__ = ["class_handles", "confusion_figure", "iou_figure"]
