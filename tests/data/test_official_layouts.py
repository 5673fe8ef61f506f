"""ADE20K, Pascal VOC (+SBD), Pascal Context and COCO-Stuff read from small fixtures in their exact on-disk layouts."""
import os

import numpy as np
import pytest
from layouts import H, W, make_ade20k, make_coco_stuff, make_pascal_context, make_voc, write_grey, write_list
from omegaconf import OmegaConf
from PIL import Image

from segattn.data import build_dataset
from segattn.errors import MissingFileError

MAKERS = {"ade20k": make_ade20k, "voc": make_voc, "pascal_context": make_pascal_context,
          "coco_stuff": make_coco_stuff}
SPLITS = {"ade20k": ("training", "validation"), "voc": ("trainaug", "val"), "pascal_context": ("train", "val"),
          "coco_stuff": ("train2017", "val2017")}

def data_cfg(name, root, split_train=None):
    from segattn.config import DataConfig

    cfg = OmegaConf.structured(DataConfig)
    cfg.dataset, cfg.root = name, str(root)
    cfg.train_split, cfg.val_split = SPLITS[name]
    return cfg


def test_labels_map_to_train_ids_as_each_benchmark_scores_them(tmp_path):
    ade = build_dataset(data_cfg("ade20k", make_ade20k(tmp_path / "ade")), "validation")
    raw = np.array(Image.open(ade.pairs[0][1]))
    _, mask, _, notes = ade.load(0)
    assert np.all(mask[raw == 0] == 255) and np.all(mask[raw == 1] == 0) and np.all(mask[raw == 150] == 149)
    voc = build_dataset(data_cfg("voc", make_voc(tmp_path / "voc")), "train")
    assert Image.open(voc.pairs[0][1]).mode == "P"
    _, mask, _, _ = voc.load(0)
    assert set(np.unique(mask)) == {0, 1, 15, 255}  # palette indices, not colours
    ctx = build_dataset(data_cfg("pascal_context", make_pascal_context(tmp_path / "ctx")), "val")
    _, mask, _, _ = ctx.load(0)
    assert set(np.unique(mask)) == {255, 0, 29, 58}
    coco = build_dataset(data_cfg("coco_stuff", make_coco_stuff(tmp_path / "coco")), "val2017")
    _, mask, _, notes = coco.load(0)
    assert set(np.unique(mask)) == {170, 0, 11, 255} and not notes  # stop sign: id 13 -> train id 11
    assert coco.class_names[11] == "stop sign" and coco.class_names[170] == "wood"
    assert len(ade.class_names) == 150 and len(voc.class_names) == 21 and len(ctx.class_names) == 59


def test_voc_trainaug_joins_train_and_the_sbd_list(tmp_path):
    voc = build_dataset(data_cfg("voc", make_voc(tmp_path / "voc")), "trainaug")
    assert [os.path.basename(p[0]) for p in voc.pairs] == ["2007_000032.jpg", "2007_000039.jpg", "2008_000002.jpg"]
    assert "SegmentationClassAug" in voc.pairs[2][1] and "SegmentationClass" + os.sep in voc.pairs[0][1]


def test_coco_stuff_prefers_converted_train_ids_and_notes_unused_ids(tmp_path):
    root = make_coco_stuff(tmp_path / "coco")
    name = root / "annotations" / "val2017" / "000000000009"
    write_grey(f"{name}_labelTrainIds.png", np.full((H, W), 7, np.uint8))
    coco = build_dataset(data_cfg("coco_stuff", root), "val2017")
    assert len(coco) == 3 and coco.pairs[0][1].endswith("_labelTrainIds.png")
    assert set(np.unique(coco.load(0)[1])) == {7}
    write_grey(f"{root / 'annotations' / 'val2017' / '000000000010'}.png", np.full((H, W), 11, np.uint8))  # id 12
    _, mask, _, notes = coco.load(1)
    assert np.all(mask == 255) and "not ids of this dataset" in notes[0]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mislaid_layout_is_one_line_naming_what_is_expected(name, tmp_path):
    root = tmp_path / name
    (root / "somewhere").mkdir(parents=True)
    with pytest.raises(MissingFileError) as err:
        build_dataset(data_cfg(name, root), SPLITS[name][0])
    message = str(err.value)
    assert "\n" not in message and str(root) in message and "expected" in message


def test_voc_list_naming_a_missing_image(tmp_path):
    root = make_voc(tmp_path / "voc")
    write_list(root / "ImageSets" / "Segmentation" / "val.txt", ["2007_000033", "2099_000001"])
    with pytest.raises(MissingFileError, match=r"split 'val' lists 2099_000001 but .*2099_000001.jpg is missing"):
        build_dataset(data_cfg("voc", root), "val")
