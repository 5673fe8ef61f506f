"""Tiny datasets in each registered dataset's exact on-disk layout, for the tests that cover every dataset.

``FIXTURES[name]`` is ``(make(root) -> root, (train split, val split), config overrides)``; the generic tests
iterate over ``DATASETS`` and ask for the fixture of each, so a dataset registered without one fails them with the
way out: add its maker here (or beside the dataset, as ``toys.py`` does).
"""
import os

import cv2
import numpy as np
from PIL import Image

from segattn.data.voc import voc_palette

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


def make_cityscapes(root):
    for split, city in (("train", "aachen"), ("val", "frankfurt")):
        for n in range(3):
            image, label = scene(n + 20, [7, 26, 23, 0])  # road, car, sky, unlabeled: label ids
            stem = f"{city}_{n:06d}_000019"
            write_jpg(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            write_grey(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label)
    return root


def make_folder(root):
    for split in ("train", "val"):
        for n in range(3):
            image, label = scene(n + 30, [0, 1, 2, 255])
            write_jpg(root / split / "images" / f"img{n}.jpg", image)
            write_grey(root / split / "masks" / f"img{n}.png", label)
    return root


def make_context_probe(root):
    from segattn.data.context_probe import generate

    return generate(str(root), num_train=4, num_val=2, progress=False)


def make_context_probe_pairs(root):
    from segattn.data.context_probe_pairs import generate

    return generate(str(root), num_train=4, num_val=2, progress=False)


FIXTURES = {
    "context_probe": (make_context_probe, ("train", "val"), {}),
    "context_probe_pairs": (make_context_probe_pairs, ("train", "val"), {}),
    "ade20k": (make_ade20k, ("training", "validation"), {}),
    "voc": (make_voc, ("trainaug", "val"), {}),
    "pascal_context": (make_pascal_context, ("train", "val"), {}),
    "coco_stuff": (make_coco_stuff, ("train2017", "val2017"), {}),
    "cityscapes": (make_cityscapes, ("train", "val"), {}),
    "folder": (make_folder, ("train", "val"), {"class_names": ["sky", "tree", "road"]}),
}
