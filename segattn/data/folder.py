"""A user's own data: ``ROOT/<split>/images/*`` with masks of the same stem in ``ROOT/<split>/masks/*.png``.

Masks hold class indices directly (0..K-1, ``ignore_index`` elsewhere); class
names and the ignore index come from the config.
"""
import os

import numpy as np

from ..errors import MissingFileError
from .base import PairDataset, allowed_values, check_same_size
from .io import IMAGE_EXTENSIONS, read_image, read_mask
from .palette import default_palette


class FolderDataset(PairDataset):
    ignore_index = 255

    def __init__(self, root: str, split: str, class_names, transform=None, ignore_index: int = 255,
                 need_labels: bool = True, unknown_labels: str = "warn"):
        self.transform, self.ignore_index, self.unknown_labels = transform, ignore_index, unknown_labels
        self.class_names = list(class_names)
        self.palette = default_palette(len(self.class_names))
        self.allowed = allowed_values(range(len(self.class_names)), ignore_index)
        img_dir, mask_dir = os.path.join(root, split, "images"), os.path.join(root, split, "masks")
        if not os.path.isdir(img_dir):
            raise MissingFileError(f"data.root: no folder {img_dir!r} (expected <root>/<split>/images and "
                                    f"<root>/<split>/masks with matching file stems)")
        images = sorted(f for f in os.listdir(img_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not images:
            raise MissingFileError(f"data.root: {img_dir!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.pairs, missing = [], []
        for name in images:
            mask = os.path.join(mask_dir, os.path.splitext(name)[0] + ".png")
            if not os.path.isfile(mask):
                missing.append(name)
                mask = None
            self.pairs.append((os.path.join(img_dir, name), mask))
        if missing and need_labels:
            raise MissingFileError(f"data.root: {len(missing)} images in {img_dir!r} have no mask in {mask_dir!r} "
                                    f"(same stem, .png), e.g. {missing[0]}")

    def load(self, index: int):
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        if mask_path:
            mask = read_mask(mask_path)
            notes = self.label_notes(mask, self.allowed, mask_path)
        else:
            mask, notes = np.full(image.shape[:2], self.ignore_index, np.uint8), []
        check_same_size(image, mask, image_path, mask_path)
        return image, mask, image_path, notes
