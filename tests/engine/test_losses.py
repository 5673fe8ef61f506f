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
