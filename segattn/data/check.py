"""Dataset health check: every problem a training run would otherwise hit hours in.

``check_split`` reports, with counts and the first few offending files: images
without labels and labels without images, unreadable files, image/label size
mismatches, label values outside the known ids, and an empty split. The cheap
part (file pairing, no decoding) runs at the start of every train/eval run.
"""
import glob
import os
from dataclasses import dataclass, field
from typing import Dict, List


from ..errors import MissingFileError
from .base import allowed_values, unknown_values
from .cityscapes import ALLOWED, IMAGE_SUFFIX, LABEL_SUFFIXES, missing_cityscapes
from .io import IMAGE_EXTENSIONS, UnreadableImage, read_image, read_mask
from .listed import DATASETS

EXAMPLES = 3


@dataclass
class Report:
    split: str
    checked: int = 0
    problems: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, kind: str, item: str):
        self.problems.setdefault(kind, []).append(item)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self):
        lines = [f"split {self.split!r}: {self.checked} pairs checked, "
                 + ("no problems" if self.ok else f"{sum(map(len, self.problems.values()))} problems")]
        for kind, items in self.problems.items():
            lines.append(f"  {kind}: {len(items)}, e.g. " + "; ".join(items[:EXAMPLES]))
        return "\n".join(lines)


def _pairs_cityscapes(root, split, report):
    img_dir, gt_dir = os.path.join(root, "leftImg8bit", split), os.path.join(root, "gtFine", split)
    images = {os.path.relpath(p, img_dir)[: -len(IMAGE_SUFFIX)]: p
              for p in glob.glob(os.path.join(img_dir, "*", "*" + IMAGE_SUFFIX))}
    labels = {}
    for suffix in LABEL_SUFFIXES[::-1]:  # labelIds wins when both exist
        for p in glob.glob(os.path.join(gt_dir, "*", "*" + suffix)):
            labels[os.path.relpath(p, gt_dir)[: -len(suffix)]] = (p, suffix)
    return images, labels


def _pairs_folder(root, split, report):
    img_dir, mask_dir = os.path.join(root, split, "images"), os.path.join(root, split, "masks")
    images = {os.path.splitext(f)[0]: os.path.join(img_dir, f) for f in sorted(os.listdir(img_dir))
              if f.lower().endswith(IMAGE_EXTENSIONS)} if os.path.isdir(img_dir) else {}
    labels = {os.path.splitext(f)[0]: (os.path.join(mask_dir, f), None) for f in sorted(os.listdir(mask_dir))
              if f.lower().endswith(".png")} if os.path.isdir(mask_dir) else {}
    return images, labels


def _pairs_listed(dataset):
    def pairs(root, split, report):
        try:
            return dataset.split_files(root, split)
        except MissingFileError as err:
            report.add("split not found", str(err))
            return {}, {}
    return pairs


def check_split(data_cfg, split: str, num_classes: int, decode: bool = True, progress: bool = False) -> Report:
    """Check one split; ``decode=False`` is the cheap start-up check (pairing only)."""
    report = Report(split)
    listed = DATASETS.get(data_cfg.dataset)
    pairing = (_pairs_cityscapes if data_cfg.dataset == "cityscapes" else _pairs_listed(listed) if listed
               else _pairs_folder)
    images, labels = pairing(data_cfg.root, split, report)
    if not images and not report.problems:
        report.add("empty split (no images)", data_cfg.root)
    for stem in sorted(set(images) - set(labels)):
        report.add("images without labels", images[stem])
    for stem in sorted(set(labels) - set(images)):
        report.add("labels without images", labels[stem][0])
    common = sorted(set(images) & set(labels))
    report.checked = len(common)
    if not decode:
        return report
    folder_allowed = allowed_values(range(num_classes), data_cfg.ignore_index)
    from tqdm import tqdm

    for stem in tqdm(common, desc=f"checking {split}", disable=not progress):
        image_path, (label_path, suffix) = images[stem], labels[stem]
        try:
            image = read_image(image_path)
        except UnreadableImage as err:
            report.add("unreadable files", str(err))
            continue
        try:
            mask = read_mask(label_path)
        except UnreadableImage as err:
            report.add("unreadable files", str(err))
            continue
        if mask.shape != image.shape[:2]:
            report.add("image/label size mismatches",
                       f"{label_path} {mask.shape[::-1]} vs image {image.shape[1::-1]}")
        allowed = listed.labels[suffix][1] if listed else ALLOWED[suffix] if suffix else folder_allowed
        bad, _ = unknown_values(mask, allowed)  # what training reads
        if bad.size:
            report.add("label values outside the known ids", f"{label_path}: {bad[:5].tolist()}")
    return report


def startup_check(data_cfg, splits, num_classes: int):
    """The cheap check run by train/eval: fail on unusable splits, warn on stray labels."""
    import logging

    for split in splits:
        if data_cfg.dataset == "cityscapes" and not os.path.isdir(os.path.join(data_cfg.root, "leftImg8bit", split)):
            raise MissingFileError(missing_cityscapes(data_cfg.root, split))
        if data_cfg.dataset in DATASETS:  # a missing folder or split list: its own one-line error, with the layout
            DATASETS[data_cfg.dataset].split_files(data_cfg.root, split)
        report = check_split(data_cfg, split, num_classes, decode=False)
        fatal = {k: v for k, v in report.problems.items() if k != "labels without images"}
        if fatal:
            kind, items = next(iter(fatal.items()))
            raise MissingFileError(f"data.root={data_cfg.root!r}: split {split!r}: {kind}: {len(items)}, e.g. "
                                    f"{items[0]}; run tools/check_dataset.py for the full report")
        for kind, items in report.problems.items():
            logging.getLogger("segattn").warning("split %r: %s: %d, e.g. %s", split, kind, len(items), items[0])
