"""What both context probes share: the cell grid, the key, the tones, the objects' one texture, how a probe is
written to its folder and the dataset class that reads it.

Kept apart from :mod:`.context_probe` and :mod:`.context_probe_pairs` so that
each of them runs as ``python -m`` without the other importing it first.
"""
import json
import os

import numpy as np

from ..errors import MissingFileError
from .generated import finish_generating, start_generating
from .io import write_png
from .listed import ListedDataset, folder_pairs, identity

CELL = 8
KEY = 4  # the key's side, in cells
GAP = 10  # cells (80 px) kept between an object and a key (context_probe's docstring)
SIZE = 256
CLASS_NAMES = ["background", "red key", "green key", "blue key", "yellow key"]
KEY_COLOURS = np.array([(215, 45, 40), (40, 190, 70), (50, 90, 225), (225, 200, 40)], np.float32)
BACKGROUND, SURFACE = 90.0, (150.0, 210.0)  # grey tones: the background, the objects' checker
PALETTE = [(40, 40, 40), (215, 45, 40), (40, 190, 70), (50, 90, 225), (225, 200, 40)]


def checker(h, w, period=4):
    """The objects' one texture: 0 and 1 in squares of ``period`` pixels."""
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy // period + xx // period) % 2).astype(np.float32)


def write_probe(root: str, settings: str, note: str, counts, prefix: str, draw, progress: bool = True) -> str:
    """Write a probe under ``root`` (skipped when a complete one of ``settings`` is there): per split (train, val:
    ``counts``) ``images/``, ``labels/`` and ``keys/<split>.json``; ``draw(split_index, i)`` gives one image's
    ``(image, label, key boxes)``."""
    if not start_generating(root, settings, note):
        return root
    from tqdm import tqdm

    for index, (split, count) in enumerate(zip(("train", "val"), counts)):
        keys = {}
        for folder in ("images", "labels"):
            os.makedirs(os.path.join(root, folder, split), exist_ok=True)
        for i in tqdm(range(count), desc=f"{prefix} {split} in {root}", disable=not progress):
            stem = f"{prefix}_{i:05d}"
            image, label, keys[stem] = draw(index, i)
            write_png(os.path.join(root, "images", split, stem + ".png"), image)
            write_png(os.path.join(root, "labels", split, stem + ".png"), label)
        os.makedirs(os.path.join(root, "keys"), exist_ok=True)
        with open(os.path.join(root, "keys", f"{split}.json"), "w") as f:
            json.dump(keys, f)
    finish_generating(root, settings)
    return root


def read_keys(root: str, split: str, module: str = "segattn.data.context_probe") -> dict:
    """``{stem: key box(es)}`` of a generated split (``module``: the generator to name where it is missing)."""
    path = os.path.join(root, "keys", f"{split}.json")
    if not os.path.isfile(path):
        raise MissingFileError(f"data.root={root!r}: no {path}; it is written with the probe "
                               f"(python -m {module} --root ROOT)")
    with open(path) as f:
        return json.load(f)


class ProbeDataset(ListedDataset):
    """A generated probe's folder (:func:`write_probe`'s layout); a subclass names its generator module."""

    class_names = CLASS_NAMES
    palette = PALETTE
    labels = {".png": identity(len(CLASS_NAMES))}
    layout = "ROOT/images/<split>/*.png, ROOT/labels/<split>/*.png and ROOT/keys/<split>.json (generated)"
    module = None  # the generator (python -m ...): its generate(root) makes the probe

    @classmethod
    def split_files(cls, root, split):
        return folder_pairs(root, split, "images", "labels", ".png", [".png"], cls.layout)

    @classmethod
    def prepare(cls, data_cfg):
        if data_cfg.demo:  # the probe's configs say so: generated on first use, as the demo set is
            import importlib

            importlib.import_module(cls.module).generate(data_cfg.root)

    def keys_of(self, index: int):
        """The key box(es), in pixels, of sample ``index``."""
        if not hasattr(self, "_keys"):
            self._keys = read_keys(self.root, self.split, self.module)
        return self._keys[os.path.basename(self.pairs[index][0])[: -len(".png")]]
