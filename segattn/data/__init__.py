"""Data: the registered datasets (Cityscapes, ADE20K, Pascal VOC (+SBD), Pascal Context, COCO-Stuff, folder),
augmentation presets, the procedural demo set.

Every function here asks the dataset class that ``data.dataset`` names; none
knows a dataset by name. Registration is the loop below, as for heads and
blocks: every module of this folder is imported, so a dataset registers itself
in ``DATASETS`` by being a file here.
"""
from omegaconf import OmegaConf

from ..config import check_once
from ..registry import import_all
from .cityscapes import CLASS_NAMES, PALETTE, CityscapesDataset
from .folder import FolderDataset
from .io import set_max_pixels
from .palette import colorize, default_palette, parse_palette
from .registry import DATASETS, dataset_class
from .transforms import eval_preset, train_preset

import_all(__name__, __path__)


def check_data_config(cfg):
    """ConfigError where ``data`` names an unknown dataset or ``model.num_classes`` does not fit it (once per
    contents: a tool's load, then the trainer, check it once)."""
    def check():
        dataset_class(cfg.data).check_config(cfg.data, cfg.model.num_classes)
        dataset_palette(cfg.data)  # data.palette, or a folder's palette file: the right count of colours

    check_once("data", (OmegaConf.to_yaml(cfg.data, resolve=True), int(cfg.model.num_classes)), check)


def train_transform(d):
    """The training augmentation the ``data`` config section describes."""
    return train_preset(tuple(d.crop_size), tuple(d.scale_range), d.ignore_index, d.flip, d.photometric,
                        train_scale=d.train_scale, cat_max_ratio=d.cat_max_ratio, pad=d.pad)


def build_dataset(data_cfg, split: str, train: bool = False, need_labels: bool = True):
    """Dataset for ``split`` from the ``data`` config section (generates the demo set when asked)."""
    set_max_pixels(data_cfg.max_pixels)
    transform = train_transform(data_cfg) if train else eval_preset(resize=data_cfg.test_resize)
    cls = dataset_class(data_cfg)
    cls.prepare(data_cfg)
    if need_labels:
        from .check import startup_check

        startup_check(data_cfg, [split])
    dataset = cls.from_config(data_cfg, split, transform, need_labels)
    if data_cfg.palette:
        dataset.palette = dataset_palette(data_cfg)
    return dataset


def dataset_class_names(data_cfg):
    """The class names of the configured dataset: its official ones, or ``data.class_names`` for a folder."""
    return dataset_class(data_cfg).classes(data_cfg)


def dataset_palette(data_cfg):
    """The colours classes are drawn in: ``data.palette`` where the config gives one, else the dataset's (its
    official palette, a folder's ``palette.txt``, or a fixed one per class)."""
    cls = dataset_class(data_cfg)
    if data_cfg.palette:
        return parse_palette(data_cfg.palette, len(cls.classes(data_cfg)), "data.palette")
    return cls.palette_for(data_cfg)


__all__ = ["CLASS_NAMES", "DATASETS", "PALETTE", "CityscapesDataset", "FolderDataset", "build_dataset",
           "check_data_config", "colorize", "dataset_class", "dataset_class_names", "dataset_palette",
           "default_palette", "eval_preset", "train_preset", "train_transform"]
