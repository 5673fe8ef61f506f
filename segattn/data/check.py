"""Dataset health check: every problem a training run would otherwise hit hours in.

``check_split`` reports, with counts and the first few offending files: images
without labels and labels without images, unreadable files, image/label size
mismatches, label values outside the known ids, colour label images, and an
empty split, each kind with its likely cause where the files show one (no image
paired: the labels are elsewhere or named otherwise; a label of coloured
pixels: a colour-coded mask, not ids). The cheap part (file pairing, no
decoding) runs at the start of every train/eval run.
"""
from dataclasses import dataclass, field
from typing import Dict, List


from ..errors import MissingFileError
from .base import unknown_values
from .io import UnreadableImage, label_is_colour, read_image, read_mask
from .registry import dataset_class

EXAMPLES = 3


@dataclass
class Report:
    split: str
    checked: int = 0
    problems: Dict[str, List[str]] = field(default_factory=dict)
    causes: Dict[str, str] = field(default_factory=dict)  # kind -> its likely cause and fix, where the files tell

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
            if kind in self.causes:
                lines.append(f"    likely cause: {self.causes[kind]}")
        return "\n".join(lines)


UNPAIRED = ("none of the {n} images has a label file: the labels are not where {name} looks for them ({layout}): "
            "a label folder of another name, another file suffix, or other file names")
COLOUR = ("these labels are colour images (R, G and B differ): a label holds one class id per pixel, as a "
          "single-channel PNG; a colour-coded mask must be converted to ids first (one colour per class)")


def check_split(data_cfg, split: str, decode: bool = True, progress: bool = False) -> Report:
    """Check one split; ``decode=False`` is the cheap start-up check (pairing only)."""
    report = Report(split)
    dataset = dataset_class(data_cfg)
    try:
        images, labels = dataset.split_files(data_cfg.root, split)
    except MissingFileError as err:
        report.add("split not found", str(err))
        images, labels = {}, {}
    if not images and not report.problems:
        report.add("empty split (no images)", data_cfg.root)
    for stem in sorted(set(images) - set(labels)):
        report.add("images without labels", images[stem])
    if images and not set(images) & set(labels):
        report.causes["images without labels"] = UNPAIRED.format(n=len(images), name=dataset.name,
                                                                 layout=dataset.layout)
    for stem in sorted(set(labels) - set(images)):
        report.add("labels without images", labels[stem][0])
    common = sorted(set(images) & set(labels))
    report.checked = len(common)
    if not decode:
        return report
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
        _, allowed = dataset.label_table(suffix, data_cfg)
        bad, _ = unknown_values(mask, allowed)  # what training reads
        if bad.size and label_is_colour(label_path):
            report.add("colour label images", label_path)
            report.causes["colour label images"] = COLOUR
        elif bad.size:
            report.add("label values outside the known ids", f"{label_path}: {bad[:5].tolist()}")
    return report


def startup_check(data_cfg, splits):
    """The cheap check run by train/eval: fail on unusable splits, warn on stray labels."""
    import logging

    for split in splits:
        # a missing folder or split list: the dataset's own error, with the layout and where the data comes from
        dataset_class(data_cfg).missing_split(data_cfg.root, split)
        report = check_split(data_cfg, split, decode=False)
        fatal = {k: v for k, v in report.problems.items() if k != "labels without images"}
        if fatal:
            kind, items = next(iter(fatal.items()))
            cause = f" ({report.causes[kind]})" if kind in report.causes else ""
            raise MissingFileError(f"data.root={data_cfg.root!r}: split {split!r}: {kind}: {len(items)}, e.g. "
                                    f"{items[0]}{cause}; run tools/check_dataset.py for the full report")
        for kind, items in report.problems.items():
            logging.getLogger("segattn").warning("split %r: %s: %d, e.g. %s", split, kind, len(items), items[0])
