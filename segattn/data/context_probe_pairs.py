"""The second context probe: two keys of different classes, each object governed by the key it shares a band with
(``data.dataset: context_probe_pairs``).

    python -m segattn.data.context_probe_pairs [--root data/context_probe_pairs] [--train 400] [--val 80]

The first probe (:mod:`.context_probe`) gives every object of an image the
one key's class, so a global summary (SE's or ECA's pooled channels, GCNet's
context vector, EncNet's encoding, a pyramid pool) can carry the class to
every pixel without knowing where the key is. Here each image has two keys of
two different classes, A and B (4 x 4 cells each, their rows and their
columns apart), and every object lies within the rows or the columns of
exactly one of them, at least ``GAP`` cells (80 px) from both: it takes that
key's class. The two keys share one noise patch, so swapping their colours
permutes the image's pixels: any statistic of the pixels pooled over the
image (mean, variance, histogram; :func:`render` with ``swap``, which
``tests/data/test_context_probe_pairs.py`` checks) is the same for both
assignments while every object's class changes. A global summary knows which
two classes are present, not which governs which object: at best 50% over the
objects (guessing one of the two), where the FCN, which sees neither key, is
at 25%. A head that carries the key along the object's band (one criss-cross
loop does, by construction) can be right everywhere.

The same rendering rules as the first probe: one checker texture for every
object, fixed grey tones, the layout drawn from a stream the classes do not
enter (an image drawn without its keys is the same for every assignment). The
keys' own pixels are labelled with their class and left out of the accuracy.

Layout: ``ROOT/images/<split>/<stem>.png``, ``ROOT/labels/<split>/<stem>.png``
and ``ROOT/keys/<split>.json`` (``{stem: [[top, left, bottom, right], ...]}``:
the two keys, in pixels).
"""
import numpy as np

from .generated import generator_main
from .listed import register
from .probe_drawing import (BACKGROUND, CELL, CLASS_NAMES, GAP, KEY, KEY_COLOURS, SIZE, SURFACE, ProbeDataset, checker,
                            write_probe)


def _apart(a, b) -> bool:
    """Two cell boxes whose rows do not overlap and whose columns do not overlap."""
    return (a[2] <= b[0] or b[2] <= a[0]) and (a[3] <= b[1] or b[3] <= a[1])


def _distance(box, key) -> int:
    """Cells between two boxes (Chebyshev: the larger of the row and column gaps; < 0 where they overlap)."""
    return max(key[0] - box[2], box[0] - key[2], key[1] - box[3], box[1] - key[3])


def _in_band(box, key) -> bool:
    """Within the key's rows or within its columns."""
    return (key[0] <= box[0] and box[2] <= key[2]) or (key[1] <= box[1] and box[3] <= key[3])


def _touches_band(box, key) -> bool:
    """Sharing any row or any column with the key."""
    return (box[0] < key[2] and key[0] < box[2]) or (box[1] < key[3] and key[1] < box[3])


def layout(rng, size: int = SIZE, gap: int = GAP):
    """``(keys, boxes, owners)``: the two keys' cell boxes, the objects' cell boxes and, per object, the index of
    the key whose band it lies in (within one band, off the other's rows and columns, ``gap`` from both keys)."""
    cells = size // CELL
    while True:
        keys = []
        while len(keys) < 2:
            t, l = int(rng.integers(0, cells - KEY + 1)), int(rng.integers(0, cells - KEY + 1))
            key = (t, l, t + KEY, l + KEY)
            if not keys or _apart(key, keys[0]):
                keys.append(key)
        boxes, owners = [], []
        for _ in range(int(rng.integers(3, 8))):
            owner = int(rng.integers(0, 2))
            key, other = keys[owner], keys[1 - owner]
            for _attempt in range(50):
                column = rng.random() < 0.5
                span = (key[1], key[3]) if column else (key[0], key[2])
                thick = int(rng.integers(1, span[1] - span[0] + 1))
                start = int(rng.integers(span[0], span[1] - thick + 1))
                length = int(rng.integers(3, 9))
                along = int(rng.integers(0, cells - length + 1))
                box = (along, start, along + length, start + thick) if column else (start, along, start + thick,
                                                                                    along + length)
                if (_distance(box, key) < gap or _distance(box, other) < gap or _touches_band(box, other)
                        or not _in_band(box, key)):
                    continue
                if all(box[0] >= b[2] + 1 or box[2] + 1 <= b[0] or box[1] >= b[3] + 1 or box[3] + 1 <= b[1]
                       for b in boxes):
                    boxes.append(box)
                    owners.append(owner)
                    break
        if len(set(owners)) == 2:  # both keys govern something: otherwise one colour would tell every object
            return keys, boxes, owners


def render(seed, classes, size: int = SIZE, gap: int = GAP, key: bool = True, swap: bool = False):
    """``(image HxWx3 uint8, label HxW uint8, [key box in pixels] * 2)`` of one image.

    ``classes`` ``(a, b)``: two different classes (1-4) for the first and the second key; ``swap`` gives the first
    key ``b`` and the second ``a`` (the same picture's pixels permuted, every object's class changed).
    """
    a, b = classes
    if a == b or not {a, b} <= {1, 2, 3, 4}:
        raise ValueError(f"classes must be two different classes of 1-4, got {classes}")
    if swap:
        a, b = b, a
    rng = np.random.default_rng(seed)
    keys, boxes, owners = layout(rng, size, gap)
    image = np.full((size, size, 3), BACKGROUND, np.float32) + rng.normal(0, 10, (size, size, 3))
    label = np.zeros((size, size), np.uint8)
    texture = np.where(checker(size, size) > 0, SURFACE[1], SURFACE[0])
    for (t, l, bt, r), owner in zip(boxes, owners):
        ys, xs = slice(t * CELL, bt * CELL), slice(l * CELL, r * CELL)
        image[ys, xs] = texture[ys, xs, None] + rng.normal(0, 10, (ys.stop - ys.start, xs.stop - xs.start, 3))
        label[ys, xs] = (a, b)[owner]
    noise = rng.normal(0, 10, (KEY * CELL, KEY * CELL, 3))  # one patch for both keys: a swap permutes pixels
    pixels = [tuple(v * CELL for v in k) for k in keys]
    if key:
        for (t, l, bt, r), class_id in zip(pixels, (a, b)):
            image[t:bt, l:r] = KEY_COLOURS[class_id - 1] + noise
            label[t:bt, l:r] = class_id
    return np.clip(image, 0, 255).astype(np.uint8), label, pixels


def object_mask(label: np.ndarray, key_boxes) -> np.ndarray:
    """The object pixels the probe scores: labelled, not a key's own."""
    scored = (label > 0) & (label < len(CLASS_NAMES))
    for t, l, b, r in key_boxes:
        scored[int(t):int(b), int(l):int(r)] = False
    return scored


def pair_of(i: int):
    """The classes of image ``i``: every ordered pair of two different classes in turn (12 pairs)."""
    pairs = [(a, b) for a in range(1, 5) for b in range(1, 5) if a != b]
    return pairs[i % len(pairs)]


def generate(root: str, num_train: int = 400, num_val: int = 80, seed: int = 0, size: int = SIZE, gap: int = GAP,
             progress: bool = True) -> str:
    """Write the probe under ``root`` (skipped when a complete probe of these settings is there)."""
    return write_probe(root, f"context_probe_pairs {num_train} {num_val} {seed} {size} {gap}",
                       "the procedural two-key context probe (python -m segattn.data.context_probe_pairs); safe to "
                       "delete", (num_train, num_val), "pairs",
                       lambda split, i: render([seed, split, i], pair_of(i), size, gap), progress)


@register
class ContextProbePairsDataset(ProbeDataset):
    name = "context_probe_pairs"
    title = "segattn's two-key context probe (generated)"
    module = "segattn.data.context_probe_pairs"

    def key_boxes(self, index: int):
        """The two key boxes (pixels) of sample ``index``."""
        return self.keys_of(index)


def main(argv=None):
    generator_main(generate, "Generate the two-key context probe (each object governed by the key of its band).",
                   "data/context_probe_pairs", 400, 80, argv)


if __name__ == "__main__":
    main()
