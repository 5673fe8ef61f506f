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
