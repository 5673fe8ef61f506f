"""Data: Cityscapes, ADE20K, Pascal VOC (+SBD), Pascal Context, COCO-Stuff and folder datasets, augmentation
presets, the procedural demo set."""
from . import ade20k, coco_stuff, pascal_context, voc  # noqa: F401 - each registers its dataset
from .cityscapes import CLASS_NAMES, PALETTE, CityscapesDataset
from .folder import FolderDataset
from .listed import DATASETS
from .palette import colorize, default_palette
from .transforms import eval_preset, train_preset


def build_dataset(data_cfg, split: str, train: bool = False, need_labels: bool = True):
    """Dataset for ``split`` from the ``data`` config section (generates the demo set when asked)."""
    transform = (train_preset(tuple(data_cfg.crop_size), tuple(data_cfg.scale_range), data_cfg.ignore_index,
                              data_cfg.flip, data_cfg.photometric) if train else eval_preset(resize=data_cfg.test_resize))
    if data_cfg.dataset == "cityscapes" and data_cfg.demo:
        from .demo import generate

        generate(data_cfg.root)
    if need_labels:
        from .check import startup_check

        startup_check(data_cfg, [split], len(dataset_class_names(data_cfg)))
    if data_cfg.dataset == "cityscapes":
        return CityscapesDataset(data_cfg.root, split, transform, need_labels, data_cfg.unknown_labels)
    if data_cfg.dataset in DATASETS:
        return DATASETS[data_cfg.dataset](data_cfg.root, split, transform, need_labels, data_cfg.unknown_labels)
    return FolderDataset(data_cfg.root, split, data_cfg.class_names, transform, data_cfg.ignore_index, need_labels,
                         data_cfg.unknown_labels)


def dataset_class_names(data_cfg):
    """The class names of the configured dataset: its official ones, or ``data.class_names`` for a folder."""
    if data_cfg.dataset == "cityscapes":
        return list(CLASS_NAMES)
    if data_cfg.dataset in DATASETS:
        return list(DATASETS[data_cfg.dataset].class_names)
    return list(data_cfg.class_names)


def dataset_palette(data_cfg):
    """The colours predictions are drawn in: Cityscapes' official palette, else a fixed one per class."""
    if data_cfg.dataset == "cityscapes":
        return PALETTE
    if data_cfg.dataset in DATASETS:
        return DATASETS[data_cfg.dataset].colours()
    return default_palette(len(data_cfg.class_names))


__all__ = ["CLASS_NAMES", "DATASETS", "PALETTE", "CityscapesDataset", "FolderDataset", "build_dataset", "colorize",
           "dataset_class_names", "dataset_palette", "default_palette", "eval_preset", "train_preset"]
