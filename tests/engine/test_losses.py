import torch
import torch.nn.functional as F

from segattn.engine.losses import SegmentationLoss, ohem_cross_entropy


def test_ohem_keeps_only_hard_pixels_above_min_kept():
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0, 0] = torch.tensor([5.0, 5.0, -5.0, 0.0])  # p(class 0): ~1, ~1, ~0, 0.5
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1)
    hard = F.cross_entropy(logits[..., 2:], target[..., 2:])
    torch.testing.assert_close(loss, hard)


def test_ohem_min_kept_raises_threshold():
    logits = torch.tensor([[[[5.0, 4.0, 3.0]], [[0.0, 0.0, 0.0]]]])
    target = torch.zeros(1, 1, 3, dtype=torch.long)
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=2)  # all easy: keep the 2 hardest
    torch.testing.assert_close(loss, F.cross_entropy(logits[..., 1:], target[..., 1:]))


def test_weighted_sum_of_outputs():
    crit = SegmentationLoss("ce", weights={"aux": 0.4, "pam": 1.0})
    target = torch.randint(0, 3, (2, 5, 5))
    outs = {k: torch.randn(2, 3, 5, 5) for k in ("main", "aux", "pam")}
    total, terms = crit(outs, target)
    expected = sum(w * F.cross_entropy(outs[k], target) for k, w in (("main", 1), ("aux", 0.4), ("pam", 1)))
    torch.testing.assert_close(total, expected)
    assert set(terms) == {"main", "aux", "pam"}


def test_ohem_equals_the_softmax_formulation_on_random_logits():
    """As CCNet's OhemCrossEntropy2d: softmax, threshold at max(thresh, k-th smallest p_true), CE over the kept."""
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, 9) * 3
    target = torch.randint(0, 5, (2, 7, 9))
    target[0, :2] = 255
    for thresh, min_kept in ((0.7, 10), (0.7, 100), (0.3, 0), (0.9, 1000)):
        prob = torch.softmax(logits, 1).gather(1, target.clamp(max=4)[:, None])[:, 0]
        valid = target != 255
        threshold = max(thresh, float(prob[valid].kthvalue(min(min_kept, int(valid.sum()))).values)) if min_kept \
            else thresh
        kept = torch.where(valid & (prob <= threshold), target, torch.full_like(target, 255))
        torch.testing.assert_close(ohem_cross_entropy(logits, target, 255, thresh, min_kept),
                                   F.cross_entropy(logits, kept, ignore_index=255))


def test_loss_average_all_counts_ignored_pixels_as_zero():
    """mmsegmentation's avg_non_ignore=False: the labelled pixels' loss summed, over every pixel."""
    from segattn.engine.losses import SegmentationLoss

    logits = torch.randn(2, 4, 6, 7)
    target = torch.randint(0, 4, (2, 6, 7))
    target[:, :2] = 255
    valid, _ = SegmentationLoss("ce", 255, average="valid")({"main": logits}, target)
    every, _ = SegmentationLoss("ce", 255, average="all")({"main": logits}, target)
    labelled = int((target != 255).sum())
    torch.testing.assert_close(every, valid * labelled / target.numel())
