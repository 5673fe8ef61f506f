"""Data: Cityscapes and folder datasets, augmentation presets, the procedural demo set."""
from .cityscapes import CLASS_NAMES, PALETTE, CityscapesDataset
from .folder import FolderDataset
from .transforms import eval_preset, train_preset


def build_dataset(data_cfg, split: str, train: bool = False, need_labels: bool = True):
    """Dataset for ``split`` from the ``data`` config section (generates the demo set when asked)."""
    transform = (train_preset(tuple(data_cfg.crop_size), tuple(data_cfg.scale_range), data_cfg.ignore_index,
                              data_cfg.flip, data_cfg.photometric) if train else eval_preset())
    if data_cfg.dataset == "cityscapes" and data_cfg.demo:
        from .demo import generate

        generate(data_cfg.root)
    if need_labels:
        from .check import startup_check

        startup_check(data_cfg, [split], len(data_cfg.class_names) or 19)
    if data_cfg.dataset == "cityscapes":
        return CityscapesDataset(data_cfg.root, split, transform, need_labels)
    return FolderDataset(data_cfg.root, split, data_cfg.class_names, transform, data_cfg.ignore_index, need_labels)


def dataset_palette(data_cfg):
    """The colours predictions are drawn in: Cityscapes' official palette, else a fixed one per class."""
    if data_cfg.dataset == "cityscapes":
        return PALETTE
    from .folder import default_palette

    return default_palette(len(data_cfg.class_names))


__all__ = ["dataset_palette", "CLASS_NAMES", "PALETTE", "CityscapesDataset", "FolderDataset", "build_dataset", "eval_preset",
           "train_preset"]
