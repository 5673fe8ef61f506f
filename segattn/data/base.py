"""What the datasets share: ``load`` returns raw arrays, ``__getitem__`` applies the transform."""
from ..errors import DataError


class PairDataset:
    """Subclasses set ``pairs`` and implement ``load(index) -> (image, mask, image_path)``."""

    transform = None

    def __len__(self):
        return len(self.pairs)

    def load(self, index: int):
        raise NotImplementedError

    def __getitem__(self, index: int):
        image, mask, path = self.load(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask, path


def check_same_size(image, mask, image_path, mask_path):
    if mask.shape != image.shape[:2]:
        raise DataError(f"{mask_path}: label size {mask.shape[::-1]} differs from image size "
                         f"{image.shape[1::-1]} of {image_path}")
