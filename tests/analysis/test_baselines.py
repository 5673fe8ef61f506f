import numpy as np

from segattn.analysis.baselines import colour_only_floor


class _ColourCoded:
    """Class = which of two colours a pixel has: a colour-only classifier must solve it."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            mask = (rng.random((12, 16)) > 0.5).astype(np.uint8)
            image = np.where(mask[..., None] == 1, [200, 30, 30], [30, 30, 200]).astype(np.uint8)
            self.items.append((image, mask))

    def __len__(self):
        return len(self.items)

    def load(self, i):
        return (*self.items[i], f"{i}.png")


def test_colour_floor_solves_colour_coded_classes():
    m = colour_only_floor(_ColourCoded(4, 0), _ColourCoded(2, 1), num_classes=3, steps=150, per_image=100,
                          progress=False)
    assert m["mIoU"] > 0.95
