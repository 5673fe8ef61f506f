"""Drawing label maps in colour: the one palette lookup every tool shares."""
import colorsys

import numpy as np
from omegaconf import OmegaConf

from ..errors import ConfigError


def default_palette(n: int):
    """``n`` colours for a dataset without an official palette: far apart and none dark or grey.

    Hues a golden-ratio turn apart (each new colour lands in the widest gap left), saturation and brightness
    taking turns, so neighbouring ids differ and no class is drawn a near-black that reads as ignore.
    """
    colours = []
    for i in range(n):
        hue = (0.02 + i * 0.618033988749895) % 1.0
        saturation = (0.8, 0.55, 0.95)[i % 3]
        value = (0.95, 0.8)[(i // 3) % 2]
        colours.append(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value)))
    return colours


PALETTE_FILE = "palette.txt"  # a folder dataset's colours, in its root: one "R G B" line per class


def parse_palette(value, num_classes: int, source: str) -> list:
    """``[[r, g, b], ...]`` (one per class, 0..255 each) as tuples; ConfigError naming ``source`` otherwise."""
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    colours = [list(c) if isinstance(c, (list, tuple)) else c for c in value]
    if len(colours) != num_classes:
        raise ConfigError(f"{source}: {len(colours)} colours for {num_classes} classes; give one [R, G, B] per class, "
                          "in the order of the class names")
    for i, colour in enumerate(colours):
        if not (isinstance(colour, list) and len(colour) == 3
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)):
            raise ConfigError(f"{source}: colour {i} is {colour!r}; each colour is three integers 0..255, e.g. "
                              "[128, 64, 128]")
    return [tuple(c) for c in colours]


def read_palette_file(path: str, num_classes: int) -> list:
    """The colours of a palette file: one ``R G B`` line per class (commas allowed, ``#`` starts a comment)."""
    colours = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            words = line.split("#", 1)[0].replace(",", " ").split()
            if not words:
                continue
            try:
                colours.append([int(w) for w in words])
            except ValueError:
                raise ConfigError(f"{path}: line {n}: {line.strip()!r} is not three integers R G B") from None
    return parse_palette(colours, num_classes, path)


def colorize(labels: np.ndarray, palette) -> np.ndarray:
    """``(H, W)`` uint8 class ids -> ``(H, W, 3)`` uint8 RGB; ids past the palette (ignore) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = np.array(palette, np.uint8)
    return lut[labels]


def legend_strip(class_ids, class_names, palette, width: int, extra=()) -> np.ndarray:
    """A white band, ``width`` pixels wide, naming ``class_ids`` beside swatches of their colours (OpenCV text);
    ``extra``: more ``(name, (r, g, b))`` entries after the classes."""
    import cv2

    entries = [(class_names[c], tuple(palette[c])) for c in class_ids if c < len(class_names)] + list(extra)
    font, scale, row = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 22
    x, lines = 8, [[]]
    for name, colour in entries:  # lay out left to right, wrapping at ``width``
        size = 18 + cv2.getTextSize(name, font, scale, 1)[0][0] + 18
        if x + size > width and lines[-1]:
            lines.append([])
            x = 8
        lines[-1].append((x, name, colour))
        x += size
    band = np.full((row * len(lines) + 6, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        y = 4 + i * row
        for x, name, colour in line:
            cv2.rectangle(band, (x, y + 3), (x + 13, y + 16), tuple(int(c) for c in colour), -1)
            cv2.rectangle(band, (x, y + 3), (x + 13, y + 16), (0, 0, 0), 1)
            cv2.putText(band, name, (x + 18, y + 15), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return band
