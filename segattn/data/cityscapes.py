"""Cityscapes: the official label table, class names, palette and the dataset.

Layout (as the official download unpacks)::

    ROOT/leftImg8bit/{train,val,test}/<city>/<name>_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/<city>/<name>_gtFine_labelIds.png   (or _labelTrainIds.png)

The 34 label ids map to the 19 train ids exactly as cityscapesScripts'
``labels.py`` does; every other id (license plate's -1 included) becomes 255.
"""
import glob
import os

import numpy as np

from ..errors import MissingFileError
from .base import allowed_values
from .listed import ListedDataset, identity, register

IGNORE_INDEX = 255

# (name, id, trainId) in the order of cityscapesScripts/helpers/labels.py
LABELS = [
    ("unlabeled", 0, 255), ("ego vehicle", 1, 255), ("rectification border", 2, 255), ("out of roi", 3, 255),
    ("static", 4, 255), ("dynamic", 5, 255), ("ground", 6, 255), ("road", 7, 0), ("sidewalk", 8, 1),
    ("parking", 9, 255), ("rail track", 10, 255), ("building", 11, 2), ("wall", 12, 3), ("fence", 13, 4),
    ("guard rail", 14, 255), ("bridge", 15, 255), ("tunnel", 16, 255), ("pole", 17, 5), ("polegroup", 18, 255),
    ("traffic light", 19, 6), ("traffic sign", 20, 7), ("vegetation", 21, 8), ("terrain", 22, 9), ("sky", 23, 10),
    ("person", 24, 11), ("rider", 25, 12), ("car", 26, 13), ("truck", 27, 14), ("bus", 28, 15),
    ("caravan", 29, 255), ("trailer", 30, 255), ("train", 31, 16), ("motorcycle", 32, 17), ("bicycle", 33, 18),
    ("license plate", -1, 255),
]

CLASS_NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle"]

PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
           (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
           (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]

ID_TO_TRAINID = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _name, _id, _train in LABELS:
    if _id >= 0:
        ID_TO_TRAINID[_id] = _train
TRAINID_TO_ID = np.array([next(i for n, i, t in LABELS if t == train) for train in range(19)], dtype=np.uint8)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIXES = ("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
HOW_TO_GET = ("download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from "
              "https://www.cityscapes-dataset.com and unzip both into this folder, point data.root elsewhere, "
              "or train on the demo data: python tools/train.py configs/demo/ccnet.yaml")


def missing_cityscapes(root: str, split: str) -> str:
    """The few lines a user without Cityscapes needs: where it comes from and where it goes."""
    return (f"data.root={root!r} holds no Cityscapes split {split!r} (no {os.path.join(root, 'leftImg8bit', split)}).\n"
            "  Cityscapes comes from https://www.cityscapes-dataset.com (free registration): download\n"
            "  leftImg8bit_trainvaltest.zip (11 GB) and gtFine_trainvaltest.zip (241 MB) and unzip both into\n"
            f"  {root}/ so that leftImg8bit/ and gtFine/ sit side by side, or anywhere with data.root=PATH.\n"
            "  Without it, python tools/train.py configs/demo/ccnet.yaml trains on generated demo data.")


def ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a label-id mask to train ids (19 classes, 255 ignore)."""
    return ID_TO_TRAINID[label_ids]


def train_ids_to_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map a train-id prediction back to label ids (for the official scripts and the test server)."""
    out = np.zeros_like(train_ids, dtype=np.uint8)
    valid = train_ids < len(TRAINID_TO_ID)
    out[valid] = TRAINID_TO_ID[train_ids[valid]]
    return out


def stems(folder: str, suffix: str) -> dict:
    """``{"<city>/<name>": path}`` of the ``<city>/<name><suffix>`` files under ``folder``."""
    return {os.path.relpath(p, folder)[: -len(suffix)]: p
            for p in sorted(glob.glob(os.path.join(glob.escape(folder), "*", "*" + suffix)))}


@register
class CityscapesDataset(ListedDataset):
    """Cityscapes-layout split; items are ``(image HxWx3 uint8 RGB, mask HxW uint8 train ids, image path)``."""

    name = "cityscapes"
    title = "Cityscapes"
    class_names = CLASS_NAMES
    palette = PALETTE
    ignore_index = IGNORE_INDEX
    # what each label file may hold and its train ids: the official ids, or the 19 train ids (255 ignore in both)
    labels = {LABEL_SUFFIXES[0]: (ID_TO_TRAINID, allowed_values([i for _, i, _ in LABELS if i >= 0], IGNORE_INDEX)),
              LABEL_SUFFIXES[1]: identity(len(CLASS_NAMES), IGNORE_INDEX)}
    layout = f"leftImg8bit/<split>/<city>/*{IMAGE_SUFFIX} and gtFine/<split>/<city>/*_gtFine_labelIds.png; {HOW_TO_GET}"
    to_label_ids = staticmethod(train_ids_to_ids)  # the official evaluator and test server read label ids

    @classmethod
    def split_files(cls, root, split):
        img_dir = os.path.join(root, "leftImg8bit", split)
        if not os.path.isdir(img_dir):
            raise MissingFileError(f"data.root: no Cityscapes images at {img_dir!r} (expected "
                                   f"leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX}); {HOW_TO_GET}")
        labels = {}
        for suffix in LABEL_SUFFIXES[::-1]:  # labelIds wins where both exist
            labels.update({stem: (path, suffix) for stem, path in
                           stems(os.path.join(root, "gtFine", split), suffix).items()})
        return stems(img_dir, IMAGE_SUFFIX), labels

    @classmethod
    def missing_split(cls, root, split):
        if not os.path.isdir(os.path.join(root, "leftImg8bit", split)):
            raise MissingFileError(missing_cityscapes(root, split))

    @classmethod
    def trained_on(cls, data_cfg) -> tuple:
        if data_cfg.demo:  # generated in this layout: not the dataset's images
            return "segattn's procedural demo data (in the Cityscapes layout; not Cityscapes images)", "segattn-demo"
        return cls.title, cls.name

    @classmethod
    def prepare(cls, data_cfg):
        if data_cfg.demo:  # the procedural demo set is in this layout
            from .demo import generate

            generate(data_cfg.root)
