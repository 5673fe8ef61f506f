"""ADE20K, Pascal VOC (+SBD), Pascal Context and COCO-Stuff read from small fixtures in their exact on-disk layouts."""
import os

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from segattn.data import DATASETS, build_dataset
from segattn.data.voc import voc_palette
from segattn.errors import MissingFileError

H, W = 48, 64


def scene(seed, values):
    """An image and a label of blobs: each label value gets its own colour, so a model can learn it."""
    rng = np.random.default_rng(seed)
    label = np.full((H, W), values[0], np.uint8)
    for v in values[1:]:
        y, x = rng.integers(0, H - 12), rng.integers(0, W - 16)
        label[y:y + 12, x:x + 16] = v
    colours = {v: rng.integers(0, 256, 3) for v in values}
    image = np.zeros((H, W, 3), np.uint8)
    for v, c in colours.items():
        image[label == v] = c
    return image, label


def write_jpg(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_grey(path, label):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(label, "L").save(path)


def write_palette(path, label):  # as VOC's SegmentationClass: mode P, the index is the class
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(label, "P")
    im.putpalette([c for rgb in voc_palette(256) for c in rgb])
    im.save(path)


def write_list(path, ids):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(f"{i}\n" for i in ids))


def make_ade20k(root):
    for split, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        for n in range(1, 4):
            image, label = scene(n, [0, 1, 3, 150])
            write_jpg(root / "images" / split / f"{prefix}_{n:08d}.jpg", image)
            write_grey(root / "annotations" / split / f"{prefix}_{n:08d}.png", label)
    return root


def make_voc(root):
    ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033", "2007_000042"], "aug": ["2008_000002"]}
    for split, names in ids.items():
        for n, i in enumerate(names):
            image, label = scene(len(i) + n, [0, 1, 15, 255])
            write_jpg(root / "JPEGImages" / f"{i}.jpg", image)
            if split == "aug":
                write_grey(root / "SegmentationClassAug" / f"{i}.png", label)
            else:
                write_palette(root / "SegmentationClass" / f"{i}.png", label)
        write_list(root / "ImageSets" / "Segmentation" / f"{split}.txt", names)
    return root


def make_pascal_context(root):
    for split, names in (("train", ["2008_000002", "2008_000003"]), ("val", ["2008_000007", "2008_000008"])):
        for n, i in enumerate(names):
            image, label = scene(n + 7, [0, 1, 30, 59])
            write_jpg(root / "JPEGImages" / f"{i}.jpg", image)
            write_grey(root / "SegmentationClassContext" / f"{i}.png", label)
        write_list(root / "ImageSets" / "SegmentationContext" / f"{split}.txt", names)
    return root


def make_coco_stuff(root):
    for split in ("train2017", "val2017"):
        for n in range(3):
            name = f"{n + 9:012d}"
            image, label = scene(n + 3, [181, 0, 12, 255])  # wood, person, stop sign (COCO id 13), unlabeled
            write_jpg(root / "images" / split / f"{name}.jpg", image)
            write_grey(root / "annotations" / split / f"{name}.png", label)
    return root


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




@pytest.mark.parametrize("name", sorted(MAKERS))
def test_train_eval_and_check_dataset_end_to_end(name, tmp_path):
    from helpers import run_tool, tiny_config

    root = MAKERS[name](tmp_path / name)
    cfg = tiny_config(str(root), tmp_path / "run", head="ccnet", max_iters=2, val_interval=2)
    cfg.data.dataset = name
    cfg.data.train_split, cfg.data.val_split = SPLITS[name]
    cfg.data.crop_size, cfg.data.scale_range = [32, 48], [0.5, 1.0]
    cfg.model.num_classes = len(DATASETS[name].class_names)
    cfg.eval.scales = [1.0]
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    out = run_tool("check_dataset.py", tmp_path / "cfg.yaml", "--no-progress").stdout
    assert "dataset OK" in out
    out = run_tool("train.py", tmp_path / "cfg.yaml", "--no-progress").stdout
    assert "mIoU" in out
    out = run_tool("eval.py", tmp_path / "cfg.yaml", "--checkpoint", tmp_path / "run" / "t" / "best.pth",
               "--no-progress").stdout
    assert f"| {DATASETS[name].class_names[0]} |" in out and "mIoU" in out
