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


def test_each_inference_setting_has_its_own_results_file_name():
    """Whole and sliding-window, other scales, flip, a test resize: each its own eval_*.json, never replacing
    another's."""
    from omegaconf import OmegaConf

    from segattn.config import Config
    from segattn.engine.evaluator import eval_setting

    def tag(**changes):
        cfg = OmegaConf.structured(Config)
        for key, value in changes.items():
            OmegaConf.update(cfg, key.replace("__", "."), value)
        return eval_setting(cfg)[0]

    variants = [tag(), tag(eval__flip=True), tag(eval__scales=[0.75, 1.0, 1.25]), tag(eval__mode="slide"),
                tag(eval__mode="slide", eval__crop_size=[512, 1024], eval__stride=[341, 683]),
                tag(data__test_resize=[2048, 1024])]
    assert variants[0] == "whole_s1" and variants[2] == "whole_s0.75-1-1.25"
    assert variants[4] == "slide512x1024-341x683_s1" and variants[5] == "whole_s1_resize2048x1024"
    assert len(set(variants)) == len(variants)
    cfg = OmegaConf.structured(Config)
    cfg.eval.flip = True
    assert eval_setting(cfg)[1] == {"mode": "whole", "scales": [1.0], "flip": True, "test_resize": None}


def test_the_errors_panel_colours_are_no_class_colour_and_the_legend_names_them():
    """Right, wrong and ignore in the errors panel; right and wrong at least 75 apart (RGB) from every Cityscapes
    colour (a dark grey "correct" was Cityscapes' building), ignore black as in the other two panels."""
    import numpy as np

    from segattn.data.cityscapes import CLASS_NAMES, PALETTE
    from segattn.engine.evaluator import ERROR_COLOURS, color_panel

    colours = dict(ERROR_COLOURS)
    for name in ("correct", "wrong"):
        distance = np.sqrt(((np.array(PALETTE) - np.array(colours[name])) ** 2).sum(1)).min()
        assert distance >= 75, (name, distance)
    mask = np.array([[0, 0, 255], [2, 2, 2]], np.uint8).repeat(20, 0).repeat(20, 1)
    pred = np.array([[0, 1, 1], [2, 2, 0]], np.uint8).repeat(20, 0).repeat(20, 1)
    panel = color_panel(pred, mask, PALETTE, CLASS_NAMES)
    errors = panel[22:22 + 40, 2 * (60 + 4):2 * (60 + 4) + 60]
    assert tuple(errors[0, 0]) == colours["correct"] and tuple(errors[0, 25]) == colours["wrong"]
    assert tuple(errors[0, 45]) == colours["ignore"] and tuple(errors[30, 45]) == colours["wrong"]
    legend = panel[62:]
    for colour in colours.values():  # a swatch of each, inside its black border
        assert (legend == np.array(colour, np.uint8)).all(-1).sum() >= 100
