"""The dataset base: a split found by folder or list, labels mapped to train ids by a table per label kind.

Each subclass (one file, registered in ``DATASETS``) says where a split's
images and labels are (``split_files``), which raw label values a file may
hold and how they map to train ids (a 256-entry table per label kind:
Cityscapes' label ids, ADE20K's and Pascal Context's "reduce zero label",
COCO-Stuff's ids with the unused ones removed), and its class names.
Everything else (pairing, unknown values, sizes, the one-line errors, what the
tools ask of a dataset through the config) is here once.
"""
import glob
import os

import numpy as np

from ..errors import ConfigError, MissingFileError
from .base import PairDataset, allowed_values, check_same_size
from .io import read_image, read_mask
from .palette import default_palette
from .registry import register  # noqa: F401 - what each dataset file decorates its class with


def identity(num_classes: int, ignore_index: int = 255):
    """Labels that hold train ids already: ``0..num_classes-1`` and the ignore value kept as they are, any other
    value trained as ignore (as the notes about it say: a value at or above ``num_classes`` is no class)."""
    lut = np.full(256, ignore_index, np.uint8)
    lut[:num_classes] = np.arange(num_classes)
    return lut, allowed_values(range(num_classes), ignore_index)


def table(mapping: dict, ignore_index: int = 255):
    """``(lut, allowed)``: raw value -> train id (unlisted: ignore), and the raw values a file may hold."""
    lut = np.full(256, ignore_index, np.uint8)
    lut[list(mapping)] = list(mapping.values())
    return lut, allowed_values(mapping, ignore_index)


def reduce_zero(num_classes: int):
    """Raw 0 is "other" (ignored), raw k is class k - 1: ADE20K, Pascal Context 59."""
    return table({0: 255, **{k: k - 1 for k in range(1, num_classes + 1)}})


def stems(folder: str, suffix: str) -> dict:
    return {os.path.basename(p)[: -len(suffix)]: p for p in sorted(glob.glob(os.path.join(folder, "*" + suffix)))}


def read_list(path: str, what: str) -> list:
    if not os.path.isfile(path):
        raise MissingFileError(f"data.root: no split list {path!r}; expected {what}")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


class ListedDataset(PairDataset):
    """Subclasses set ``name``, ``class_names``, ``labels`` (kind -> (lut, allowed)) and ``split_files``."""

    name = ""
    class_names = []
    ignore_index = 255
    labels = {}
    layout = ""  # the expected layout, for errors
    title = ""   # the dataset's name as a person writes it (what a model card says it trained on)

    def __init__(self, root: str, split: str, transform=None, need_labels: bool = True,
                 unknown_labels: str = "warn"):
        self.root, self.split, self.transform, self.unknown_labels = root, split, transform, unknown_labels
        self.palette = self.colours()
        images, labels = self.split_files(root, split)
        if not images:
            raise MissingFileError(f"data.root={root!r}: no {self.name} images for split {split!r}; expected "
                                   f"{self.layout}")
        missing = sorted(set(images) - set(labels))
        if missing and need_labels:
            raise MissingFileError(f"data.root={root!r}: {len(missing)} of {len(images)} images of {self.name} split "
                                   f"{split!r} have no label file, e.g. {images[missing[0]]}; expected {self.layout}")
        self.pairs = [(images[s],) + (labels[s] if s in labels else (None, None)) for s in sorted(images)]

    # What the tools ask of a dataset, given the ``data`` config section. A dataset whose classes come from the
    # config (``folder``) overrides these; the official ones answer from class attributes.
    @classmethod
    def from_config(cls, data_cfg, split: str, transform=None, need_labels: bool = True):
        """The split ``data_cfg`` describes (``prepare`` has run)."""
        return cls(data_cfg.root, split, transform, need_labels, data_cfg.unknown_labels)

    @classmethod
    def classes(cls, data_cfg) -> list:
        return list(cls.class_names)

    @classmethod
    def palette_for(cls, data_cfg) -> list:
        return cls.colours()

    @classmethod
    def label_table(cls, kind: str, data_cfg):
        """``(lut, allowed)`` of the label files of ``kind`` (the suffix ``split_files`` reports)."""
        return cls.labels[kind]

    @classmethod
    def check_config(cls, data_cfg, num_classes: int):
        """ConfigError where the config cannot describe this dataset."""
        if num_classes != len(cls.class_names):
            raise ConfigError(f"model.num_classes: must be {len(cls.class_names)} for {cls.name}, got {num_classes}")

    @classmethod
    def trained_on(cls, data_cfg) -> tuple:
        """``(name, tag)``: the data a model of this config trained on, as its model card names and tags it."""
        return cls.title or cls.name, cls.name

    @classmethod
    def prepare(cls, data_cfg):
        """Anything to do before a split is read (the demo set is generated here)."""

    @classmethod
    def missing_split(cls, root: str, split: str):
        """MissingFileError, with the layout, when a split's folder or list is absent (the start-up check)."""
        cls.split_files(root, split)

    # what ``tools/eval.py --save-pred`` writes: train ids, unless the dataset's own tools read other ids
    to_label_ids = None

    @classmethod
    def colours(cls):
        """The dataset's palette where it has an official one (``palette``), else a fixed one per class."""
        return getattr(cls, "palette", None) or default_palette(len(cls.class_names))

    @classmethod
    def split_files(cls, root: str, split: str):
        """``({stem: image}, {stem: (label, kind)})`` of a split; MissingFileError if its folder or list is absent."""
        raise NotImplementedError

    def load(self, index: int):
        image_path, label_path, kind = self.pairs[index]
        image, notes = read_image(image_path), []
        if label_path is None:
            mask = np.full(image.shape[:2], self.ignore_index, np.uint8)
        else:
            raw = read_mask(label_path)
            lut, allowed = self.labels[kind]
            notes = self.label_notes(raw, allowed, label_path)
            mask = lut[raw]
        check_same_size(image, mask, image_path, label_path)
        return image, mask, image_path, notes


def unknown_pixels(dataset, index: int):
    """Where sample ``index``'s label file holds values that are not ids of ``dataset`` (None: no label file).

    :meth:`ListedDataset.load` turns them into ignore, as training does; the
    dataset browser marks them instead, so that a wrong label encoding shows.
    """
    _, label_path, kind = dataset.pairs[index]
    if label_path is None:
        return None
    _, allowed = dataset.labels[kind]
    return ~allowed[read_mask(label_path)]


def folder_pairs(root, split, image_dir, label_dir, image_suffix, label_kinds, layout):
    """Images in ``root/image_dir/split``, labels beside them in ``root/label_dir/split`` (first kind found wins)."""
    img_dir = os.path.join(root, image_dir, split)
    if not os.path.isdir(img_dir):
        raise MissingFileError(f"data.root={root!r}: no folder {img_dir!r}; expected {layout}")
    images = stems(img_dir, image_suffix)
    labels = {}
    for suffix in label_kinds[::-1]:  # the first kind listed wins where both exist
        others = tuple(k for k in label_kinds if k != suffix and k.endswith(suffix))  # "_labelTrainIds.png" vs ".png"
        for stem, path in stems(os.path.join(root, label_dir, split), suffix).items():
            if not path.endswith(others):
                labels[stem] = (path, suffix)
    return images, labels


def listed_pairs(root, split, ids, label_dirs, layout):
    """Images ``root/JPEGImages/<id>.jpg`` of a split list, each label from the first of ``label_dirs`` holding it."""
    images, labels = {}, {}
    for i in dict.fromkeys(ids):  # unique, in order
        image = os.path.join(root, "JPEGImages", i + ".jpg")
        if not os.path.isfile(image):
            raise MissingFileError(f"data.root={root!r}: split {split!r} lists {i} but {image} is missing; "
                                   f"expected {layout}")
        images[i] = image
        for folder in label_dirs:
            label = os.path.join(root, folder, i + ".png")
            if os.path.isfile(label):
                labels[i] = (label, "")
                break
    return images, labels
