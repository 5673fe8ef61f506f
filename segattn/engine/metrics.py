"""Confusion-matrix metrics: per-class IoU, mIoU, mean accuracy, pixel accuracy.

Classes absent from both ground truth and prediction have no IoU and do not
count in the means (their entries are NaN), as in mmsegmentation.
"""
import json

import numpy as np
import torch

from ..data.io import output_file


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, target: torch.Tensor, pred: torch.Tensor):
        """Accumulate ``target`` vs ``pred`` (same shape, class indices); ignore_index skipped."""
        target, pred = target.flatten().cpu().long(), pred.flatten().cpu().long()
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        idx = target[keep] * self.num_classes + pred[keep]
        self.mat += torch.bincount(idx, minlength=self.num_classes ** 2).view(self.num_classes, self.num_classes)

    def reduce_from_all_processes(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.mat)

    def compute(self) -> dict:
        m = self.mat.double()
        tp = m.diag()
        gt, pr = m.sum(1), m.sum(0)
        union = gt + pr - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        total = m.sum()
        return {
            "mIoU": _nanmean(iou),
            "mAcc": _nanmean(acc),
            "aAcc": float(tp.sum() / total) if total > 0 else float("nan"),
            "IoU": [float(x) for x in iou],
            "Acc": [float(x) for x in acc],
        }


def _nanmean(x: torch.Tensor) -> float:
    valid = ~torch.isnan(x)
    return float(x[valid].mean()) if valid.any() else float("nan")


def format_table(metrics: dict, class_names) -> str:
    """Per-class IoU / accuracy table (Markdown) followed by the summary line."""
    lines = ["| class | IoU | Acc |", "|---|---|---|"]
    for name, iou, acc in zip(class_names, metrics["IoU"], metrics["Acc"]):
        lines.append(f"| {name} | {_pct(iou)} | {_pct(acc)} |")
    lines.append(f"\nmIoU {_pct(metrics['mIoU'])}  mAcc {_pct(metrics['mAcc'])}  aAcc {_pct(metrics['aAcc'])}")
    skipped = metrics.get("skipped") or []
    if skipped:
        lines.append(f"{len(skipped)} of {metrics.get('images', 0) + len(skipped)} images could not be read and are "
                     "NOT in these numbers:")
        lines += [f"  {message}" for message in skipped]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "-" if x is None or np.isnan(x) else f"{100 * x:.2f}"


def _json_safe(value):
    """NaN (a class absent from labels and predictions) as null: strict JSON has no NaN token."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def save_json(metrics: dict, class_names, path: str, settings: dict = None):
    """The metrics and a per-class table as strict JSON (``null`` where a class's IoU or accuracy is undefined),
    with ``settings`` (what was evaluated and how) first; the confusion matrix goes to
    :func:`save_confusion_json`'s file, not here."""
    data = ({"settings": settings} if settings else {}) | {k: v for k, v in metrics.items() if k != "confusion"}
    data["per_class"] = {n: {"IoU": i, "Acc": a} for n, i, a in zip(class_names, metrics["IoU"], metrics["Acc"])}
    with output_file(path) as tmp, open(tmp, "w") as f:
        json.dump(_json_safe(data), f, indent=2, allow_nan=False)


def save_confusion_json(counts, class_names, path: str):
    """``counts[ground truth][prediction]`` pixel counts with the class names, as JSON."""
    with output_file(path) as tmp, open(tmp, "w") as f:
        json.dump({"classes": list(class_names), "rows": "ground truth", "columns": "prediction",
                   "pixels": int(sum(map(sum, counts))), "counts": counts}, f)
