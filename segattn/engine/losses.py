"""Losses: cross-entropy and online hard example mining (OHEM) cross-entropy.

Cross-entropy's mean is taken over the labelled pixels (``average="valid"``,
PyTorch's ``ignore_index`` mean, as the official CCNet and DANet code) or over
every pixel with ignored ones counting 0 (``"all"``, mmsegmentation's
``CrossEntropyLoss(avg_non_ignore=False)``, its default): the second gives a
smaller loss and gradient wherever labels are ignored.

OHEM follows CCNet's ``OhemCrossEntropy2d``: pixels whose predicted probability
for their true class is above ``thresh`` are dropped, unless fewer than
``min_kept`` pixels would remain, in which case the ``min_kept`` hardest are kept.
"""
import torch
import torch.nn.functional as F
from torch import nn


def ohem_cross_entropy(logits, target, ignore_index=255, thresh=0.7, min_kept=100000):
    # one log-softmax serves both the selection and the loss: p(true class) = exp(-per-pixel CE)
    pixel_loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    with torch.no_grad():
        valid = target != ignore_index
        p_true = torch.exp(-pixel_loss)
        p_valid = p_true[valid]
        threshold = thresh
        if p_valid.numel() > 0 and min_kept > 0:
            k = min(p_valid.numel(), min_kept)
            threshold = max(thresh, float(p_valid.kthvalue(k).values))
        keep = valid & (p_true <= threshold)
    if not keep.any():
        return logits.sum() * 0.0
    return pixel_loss[keep].mean()


def presence_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Binary cross-entropy of ``logits (B, K)`` against the classes each label ``(B, H, W)`` holds (ignored pixels
    and values outside 0..K-1 count for none), the mean over B x K: EncNet's SE loss, as mmsegmentation computes it."""
    b, k = logits.shape
    labels = target.reshape(b, -1).long()
    labels = torch.where((labels >= 0) & (labels < k) & (labels != ignore_index), labels, k)
    present = torch.zeros(b, k + 1, device=logits.device).scatter_(1, labels, 1.0)[:, :k]
    return F.binary_cross_entropy_with_logits(logits, present)


class SegmentationLoss(nn.Module):
    """Weighted sum of per-output losses: ``main`` weight 1, ``aux`` and head extras from the config.

    Returns ``(total, {name: loss})`` so each term can be logged.
    """

    def __init__(self, kind="ce", ignore_index=255, weights=None, ohem_thresh=0.7, ohem_min_kept=100000,
                 average="valid", presence=()):
        super().__init__()
        self.presence = frozenset(presence)  # outputs of class presence (B, K): presence_loss
        self.kind, self.ignore_index, self.average = kind, ignore_index, average
        self.weights = {"main": 1.0, **(weights or {})}
        self.ohem_thresh, self.ohem_min_kept = ohem_thresh, ohem_min_kept

    def single(self, logits, target):
        if self.kind == "ohem":
            return ohem_cross_entropy(logits, target, self.ignore_index, self.ohem_thresh, self.ohem_min_kept)
        if self.average == "all":
            return F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none").mean()
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index)

    def forward(self, outputs: dict, target: torch.Tensor):
        terms = {name: (presence_loss(logits.float(), target, self.ignore_index) if name in self.presence
                        else self.single(logits.float(), target))
                 for name, logits in outputs.items() if self.weights.get(name, 0) > 0}
        total = sum(self.weights[name] * value for name, value in terms.items())
        return total, {name: float(v.detach()) for name, v in terms.items()}


def build_loss(cfg, head_loss_weights=None, presence=()) -> SegmentationLoss:
    """The recipe's loss; ``head_loss_weights`` are the head's own extra terms (DANet's pam, cam), ``presence``
    those of them that predict class presence (EncNet's se)."""
    weights = dict(head_loss_weights or {})
    if cfg.model.aux.enabled:
        weights["aux"] = cfg.model.aux.loss_weight
    return SegmentationLoss(cfg.train.loss, cfg.data.ignore_index, weights, cfg.train.ohem_thresh,
                            cfg.train.ohem_min_kept, cfg.train.loss_average, presence)
