"""What the datasets share: ``load`` returns raw arrays, ``__getitem__`` applies the transform."""
import numpy as np

from ..errors import DataError


class LabelError(DataError):
    """A label holds ids the dataset does not define, and ``data.unknown_labels`` is ``error``."""


class PairDataset:
    """Subclasses set ``pairs`` and implement ``load(index) -> (image, mask, image_path, notes)``.

    ``notes`` are one-line warnings about the sample (unknown label values); the
    loader reports each file's once, in the main process.
    """

    transform = None
    unknown_labels = "warn"  # warn: train the unknown values as ignore, with a note | error: refuse the sample

    def label_notes(self, raw: np.ndarray, allowed: np.ndarray, label_path: str):
        """Notes for values of ``raw`` outside ``allowed`` (a 256-entry bool table); LabelError if refused."""
        unknown, counts = unknown_values(raw, allowed)
        if not unknown.size:
            return []
        what = f"{label_path}: label values {unknown[:8].tolist()} are not ids of this dataset"
        if self.unknown_labels == "error":
            raise LabelError(f"{what} (data.unknown_labels=error); fix the file or set data.unknown_labels=warn")
        return [f"{what}; trained as ignore ({int(counts[unknown].sum())} pixels)"]

    def __len__(self):
        return len(self.pairs)

    def load(self, index: int):
        raise NotImplementedError

    def __getitem__(self, index: int):
        image, mask, path, notes = self.load(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask, path, notes


def unknown_values(raw: np.ndarray, allowed: np.ndarray):
    """The values of a uint8 label outside ``allowed`` (sorted), and the label's count of every value."""
    counts = np.bincount(raw.ravel(), minlength=256)
    return np.flatnonzero((counts > 0) & ~allowed), counts


def allowed_values(ids, ignore_index: int) -> np.ndarray:
    """A 256-entry bool table of the values a label file may hold."""
    table = np.zeros(256, bool)
    table[list(ids)] = True
    table[ignore_index] = True
    return table


def check_same_size(image, mask, image_path, mask_path):
    if mask.shape != image.shape[:2]:
        raise DataError(f"{mask_path}: label size {mask.shape[::-1]} differs from image size "
                         f"{image.shape[1::-1]} of {image_path}")
