import math

import torch

from segattn.engine.metrics import ConfusionMatrix, format_table


def test_hand_computed_confusion_matrix():
    cm = ConfusionMatrix(4, ignore_index=255)
    target = torch.tensor([0, 0, 1, 1, 1, 255, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 3, 2])
    cm.update(target, pred)
    # class 0: tp 1, gt 2, pred 2 -> IoU 1/3; class 1: tp 2, gt 3, pred 3 -> 2/4; class 2: 1/1; class 3 absent
    m = cm.compute()
    assert math.isclose(m["IoU"][0], 1 / 3) and math.isclose(m["IoU"][1], 0.5) and m["IoU"][2] == 1.0
    assert math.isnan(m["IoU"][3])  # absent from gt and pred: not counted
    assert math.isclose(m["mIoU"], (1 / 3 + 0.5 + 1.0) / 3)
    assert math.isclose(m["aAcc"], 4 / 6)
    assert math.isclose(m["mAcc"], (0.5 + 2 / 3 + 1.0) / 3)


def test_predicted_but_absent_class_counts_as_zero():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0]), torch.tensor([0, 2]))
    m = cm.compute()
    assert m["IoU"][2] == 0.0 and math.isnan(m["IoU"][1])
    assert math.isclose(m["mIoU"], (0.5 + 0.0) / 2)


def test_table_lists_classes():
    cm = ConfusionMatrix(2)
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))
    text = format_table(cm.compute(), ["road", "sky"])
    assert "| road | 100.00 |" in text and "mIoU 100.00" in text


def test_metrics_json_is_strict_json_with_null_for_undefined_classes(tmp_path):
    """A class absent from labels and predictions has no IoU: null in the file, never a bare NaN token."""
    import json

    from segattn.engine.metrics import ConfusionMatrix, save_json

    cm = ConfusionMatrix(3, 255)
    cm.update(torch.tensor([[0, 1, 255]]), torch.tensor([[0, 1, 1]]))  # class 2 nowhere
    metrics = cm.compute()
    path = tmp_path / "eval_val.json"
    save_json(metrics, ["a", "b", "c"], str(path))

    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["per_class"]["c"] == {"IoU": None, "Acc": None} and data["IoU"][2] is None
    assert data["per_class"]["a"]["IoU"] == 1.0
