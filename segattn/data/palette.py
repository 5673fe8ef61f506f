"""Drawing label maps in colour: the one palette lookup every tool shares."""
import numpy as np


def default_palette(n: int):
    """A fixed random colour per class for datasets without an official palette."""
    rng = np.random.default_rng(0)
    return [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(n)]


def colorize(labels: np.ndarray, palette) -> np.ndarray:
    """``(H, W)`` uint8 class ids -> ``(H, W, 3)`` uint8 RGB; ids past the palette (ignore) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.array(palette, np.uint8)
    return lut[labels]
