"""The context probe: images where only a far-away key mark tells an object's class (``data.dataset: context_probe``).

    python -m segattn.data.context_probe [--root data/context_probe] [--train 400] [--val 80]

Every object is drawn with one texture (a grey checker), the same for every
class, on a plain grey background; the class of all objects of an image is the
colour of one key mark (red, green, blue or yellow). Nothing near an object
says which class it is, so a head can only be right where it sees the key. The
layout (objects, key position, noise) is drawn from a random stream that the
class does not enter: an image rendered without its key is the same picture for
every class (:func:`render` with ``key=False``), which
``tests/data/test_context_probe.py`` checks. The key's own pixels carry its
class too (recognising a colour is local; carrying it to the objects is what
the probe tests) and are left out of the reach accuracy.

Geometry, in cells of 8 pixels (the output stride; everything is aligned to
them, so "the same row" is exact at the feature resolution), on a 256 x 256
image (32 x 32 cells): the key is 4 x 4 cells. Each object is one of

* **row/column**: it lies within the key's rows (or columns), at least
  ``GAP`` cells away along them;
* **elsewhere**: it is at least ``GAP`` cells away from the key's rows *and*
  from its columns.

With ``GAP = 10`` (80 pixels) the key lies beyond the effective receptive field
of the FCN baseline on ``tu-resnet10c_narrow``: its exact support (the gradient
of an output pixel with respect to the input, every zero-initialised gate
opened: :func:`segattn.analysis.probe.receptive_field`) reaches about 100
pixels, but less than 0.5% of that gradient lies beyond 80, and for more than
80% of object pixels the key is beyond the support itself; the same margin
keeps most "elsewhere" pixels off the row and column bands one criss-cross
loop sees. So an FCN is near chance, CCNet with R = 1 sees the key from its
rows and columns but from few "elsewhere" pixels, and a head that sees the
whole image can be right everywhere (``tests/analysis/test_probe.py`` checks each of these as
gradients). :func:`key_buckets` marks each object pixel as row/column
or elsewhere for the comparison's split accuracy.

Layout: ``ROOT/images/<split>/<stem>.png``, ``ROOT/labels/<split>/<stem>.png``
(train ids: 0 background, 1-4 the key's colour, on the objects and on the key)
and ``ROOT/keys/<split>.json`` (``{stem: [top, left, bottom, right]}`` of each
key, in pixels, bottom and right exclusive).
"""
import numpy as np

from .generated import generator_main
from .listed import register
from .probe_drawing import (BACKGROUND, CELL, CLASS_NAMES, GAP, KEY, KEY_COLOURS, PALETTE, SIZE,  # noqa: F401
                            SURFACE, ProbeDataset, checker, read_keys, write_probe)

ROW_COLUMN, ELSEWHERE = 1, 2  # key_buckets' values (0: not an object pixel)


def _draw_objects(rng, cells: int, key: tuple, gap: int, count: int):
    """Up to ``count`` object boxes (cell units, [top, left, bottom, right)), each row/column or elsewhere."""
    kt, kl, kb, kr = key
    boxes = []
    for _ in range(count):
        aligned = rng.random() < 0.5
        for _attempt in range(50):
            if aligned:  # within the key's rows (or, transposed, its columns), far along them
                column = rng.random() < 0.5
                kt_, kl_, kb_, kr_ = (kl, kt, kr, kb) if column else key
                h, w = int(rng.integers(1, kb_ - kt_ + 1)), int(rng.integers(3, 9))
                t = int(rng.integers(kt_, kb_ - h + 1))
                l = int(rng.integers(0, cells - w + 1))
                if l + w > kl_ - gap and l < kr_ + gap:
                    continue
                box = (l, t, l + w, t + h) if column else (t, l, t + h, l + w)
            else:  # away from the key's rows and from its columns
                h, w = int(rng.integers(3, 8)), int(rng.integers(3, 8))
                t, l = int(rng.integers(0, cells - h + 1)), int(rng.integers(0, cells - w + 1))
                if (t + h > kt - gap and t < kb + gap) or (l + w > kl - gap and l < kr + gap):
                    continue
                box = (t, l, t + h, l + w)
            if all(box[0] >= b[2] + 1 or box[2] + 1 <= b[0] or box[1] >= b[3] + 1 or box[3] + 1 <= b[1]
                   for b in boxes):  # a free cell between objects
                boxes.append(box)
                break
    return boxes


def layout(rng, size: int = SIZE, gap: int = GAP):
    """``(key, boxes)``: the key's cell box and the objects' cell boxes of one image."""
    cells = size // CELL
    while True:
        kt, kl = int(rng.integers(0, cells - KEY + 1)), int(rng.integers(0, cells - KEY + 1))
        key = (kt, kl, kt + KEY, kl + KEY)
        boxes = _draw_objects(rng, cells, key, gap, int(rng.integers(3, 8)))
        if boxes:
            return key, boxes


def render(seed, class_id: int, size: int = SIZE, gap: int = GAP, key: bool = True):
    """``(image HxWx3 uint8, label HxW uint8, key box in pixels)`` of one probe image.

    ``seed`` seeds the layout stream (anything ``np.random.default_rng`` takes);
    ``class_id`` (1-4) only colours the key, so with ``key=False`` the picture
    does not depend on it.
    """
    rng = np.random.default_rng(seed)
    key_box, boxes = layout(rng, size, gap)
    # fixed tones (only pixel noise varies): what a row or the whole image averages to then changes with the
    # key alone, so a head that gathers context is not asked to find the key under image-wide lighting changes
    image = np.full((size, size, 3), BACKGROUND, np.float32) + rng.normal(0, 10, (size, size, 3))
    label = np.zeros((size, size), np.uint8)
    texture = np.where(checker(size, size) > 0, SURFACE[1], SURFACE[0])
    for t, l, b, r in boxes:
        ys, xs = slice(t * CELL, b * CELL), slice(l * CELL, r * CELL)
        image[ys, xs] = texture[ys, xs, None] + rng.normal(0, 10, (ys.stop - ys.start, xs.stop - xs.start, 3))
        label[ys, xs] = class_id
    noise = rng.normal(0, 10, (KEY * CELL, KEY * CELL, 3))
    pixels = tuple(v * CELL for v in key_box)
    if key:
        ys, xs = slice(pixels[0], pixels[2]), slice(pixels[1], pixels[3])
        image[ys, xs] = KEY_COLOURS[class_id - 1] + noise
        label[ys, xs] = class_id  # the key is labelled too: recognising it is local; carrying it is the test
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, label, pixels


def key_buckets(label: np.ndarray, key_box, cell: int = CELL) -> np.ndarray:
    """Per pixel: 1 where an object pixel shares a row or a column of cells with the key, 2 for other object
    pixels, 0 for background and ignored pixels."""
    h, w = label.shape
    t, l, b, r = (int(v) for v in key_box)
    rows = (np.arange(h) // cell >= t // cell) & (np.arange(h) // cell < -(-b // cell))
    cols = (np.arange(w) // cell >= l // cell) & (np.arange(w) // cell < -(-r // cell))
    on_cross = rows[:, None] | cols[None, :]
    objects = (label > 0) & (label < len(CLASS_NAMES))
    objects[t:b, l:r] = False  # the key's own pixels: told locally, not by reach
    return np.where(objects, np.where(on_cross, ROW_COLUMN, ELSEWHERE), 0).astype(np.uint8)


def generate(root: str, num_train: int = 400, num_val: int = 80, seed: int = 0, size: int = SIZE, gap: int = GAP,
             progress: bool = True) -> str:
    """Write the probe under ``root`` (skipped when a complete probe of these settings is there)."""
    return write_probe(root, f"context_probe {num_train} {num_val} {seed} {size} {gap}",
                       "the procedural context probe (python -m segattn.data.context_probe); safe to delete",
                       (num_train, num_val), "probe",
                       lambda split, i: render([seed, split, i], 1 + i % 4, size, gap),  # classes balanced
                       progress)


@register
class ContextProbeDataset(ProbeDataset):
    name = "context_probe"
    title = "segattn's context probe (generated)"
    module = "segattn.data.context_probe"

    def key_box(self, index: int):
        """The key box (pixels) of sample ``index``."""
        return self.keys_of(index)


def main(argv=None):
    generator_main(generate, "Generate the context probe (only a far-away key tells the class).",
                   "data/context_probe", 400, 80, argv)


if __name__ == "__main__":
    main()
