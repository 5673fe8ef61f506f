"""A user's own data: ``ROOT/<split>/images/*`` with masks of the same stem in ``ROOT/<split>/masks/*.png``.

Masks hold class indices directly (0..K-1, ``data.ignore_index`` elsewhere);
the class names (so K) and the ignore index come from the config
(``data.class_names``, ``data.ignore_index``), which is why this dataset
answers the config questions of :class:`ListedDataset` from the config.
"""
import os

from ..errors import ConfigError, MissingFileError
from .io import IMAGE_EXTENSIONS
from .listed import ListedDataset, identity, register
from .palette import PALETTE_FILE, default_palette, read_palette_file

LAYOUT = "<root>/<split>/images and <root>/<split>/masks with matching file stems (masks .png)"


def folder_palette(root: str, num_classes: int) -> list:
    """``<root>/palette.txt`` where the folder has one (one ``R G B`` line per class), else the fixed palette."""
    path = os.path.join(root, PALETTE_FILE)
    return read_palette_file(path, num_classes) if os.path.isfile(path) else default_palette(num_classes)


@register
class FolderDataset(ListedDataset):
    name = "folder"
    title = "a folder dataset of one's own"
    layout = LAYOUT

    def __init__(self, root: str, split: str, class_names, transform=None, ignore_index: int = 255,
                 need_labels: bool = True, unknown_labels: str = "warn"):
        self.class_names, self.ignore_index = list(class_names), ignore_index
        self.labels = {".png": identity(len(self.class_names), ignore_index)}
        super().__init__(root, split, transform, need_labels, unknown_labels)

    def colours(self):
        return folder_palette(self.root, len(self.class_names))

    @classmethod
    def from_config(cls, data_cfg, split, transform=None, need_labels=True):
        return cls(data_cfg.root, split, data_cfg.class_names, transform, data_cfg.ignore_index, need_labels,
                   data_cfg.unknown_labels)

    @classmethod
    def classes(cls, data_cfg):
        return list(data_cfg.class_names)

    @classmethod
    def trained_on(cls, data_cfg):
        return cls.title, "custom-data"

    @classmethod
    def palette_for(cls, data_cfg):
        return folder_palette(data_cfg.root, len(data_cfg.class_names))

    @classmethod
    def label_table(cls, kind, data_cfg):
        return identity(len(data_cfg.class_names), data_cfg.ignore_index)

    @classmethod
    def check_config(cls, data_cfg, num_classes):
        if len(data_cfg.class_names) != num_classes:
            raise ConfigError(f"data.class_names: must list model.num_classes={num_classes} names for a folder "
                              f"dataset, got {len(data_cfg.class_names)}")

    @classmethod
    def split_files(cls, root, split):
        img_dir, mask_dir = os.path.join(root, split, "images"), os.path.join(root, split, "masks")
        if not os.path.isdir(img_dir):
            raise MissingFileError(f"data.root: no folder {img_dir!r} (expected {LAYOUT})")
        images = {os.path.splitext(f)[0]: os.path.join(img_dir, f) for f in sorted(os.listdir(img_dir))
                  if f.lower().endswith(IMAGE_EXTENSIONS)}
        masks = {os.path.splitext(f)[0]: (os.path.join(mask_dir, f), ".png") for f in sorted(os.listdir(mask_dir))
                 if f.lower().endswith(".png")} if os.path.isdir(mask_dir) else {}
        return images, masks
