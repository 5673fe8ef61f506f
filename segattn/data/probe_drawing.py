"""What both context probes draw with: the cell grid, the key, the tones and the objects' one texture.

Kept apart from :mod:`.context_probe` and :mod:`.context_probe_pairs` so that
each of them runs as ``python -m`` without the other importing it first.
"""
import numpy as np

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
