"""The two-key probe's guarantee: a pooled summary of the image cannot tell which key governs which object."""
import numpy as np
import pytest

from segattn.data.context_probe import CELL, GAP
from segattn.data.context_probe_pairs import ContextProbePairsDataset, main, object_mask, pair_of, render


def pixel_counts(image):
    values, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return values, counts


@pytest.mark.parametrize("seed", range(8))
def test_swapping_the_keys_permutes_the_pixels_and_changes_every_object(seed):
    """Any statistic pooled over the image (here: the count of every RGB value, which fixes the mean, the variance
    and any histogram) is the same for both assignments; every scored pixel's class differs."""
    classes = pair_of(seed)
    image, label, keys = render([5, seed], classes)
    swapped, swapped_label, swapped_keys = render([5, seed], classes, swap=True)
    assert keys == swapped_keys and not np.array_equal(image, swapped)
    for ours, theirs in zip(pixel_counts(image), pixel_counts(swapped)):
        assert np.array_equal(ours, theirs)
    scored = object_mask(label, keys)
    assert scored.any() and np.array_equal(scored, object_mask(swapped_label, keys))
    assert (label[scored] != swapped_label[scored]).all()
    assert set(np.unique(label[scored])) == set(classes)  # both keys govern objects


@pytest.mark.parametrize("seed", range(4))
def test_without_its_keys_an_image_is_the_same_for_every_assignment(seed):
    images = [render([9, seed], pair_of(i), key=False)[0] for i in range(12)]
    assert all(np.array_equal(images[0], other) for other in images[1:])


def _objects(label, keys):
    import cv2

    count, regions = cv2.connectedComponents(object_mask(label, keys).astype(np.uint8), connectivity=4)
    for k in range(1, count):
        ys, xs = np.nonzero(regions == k)
        yield (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1), int(label[ys[0], xs[0]])


@pytest.mark.parametrize("seed", range(20))
def test_each_object_lies_in_one_keys_band_far_from_both_and_takes_its_class(seed):
    classes = pair_of(seed + 1)
    _, label, keys = render([2, seed], classes)
    (at, al, ab, ar), (bt, bl, bb, br) = keys
    assert (ab <= bt or bb <= at) and (ar <= bl or br <= al)  # the keys' rows apart, their columns apart
    for (top, left, bottom, right), class_id in _objects(label, keys):
        assert top % CELL == left % CELL == bottom % CELL == right % CELL == 0
        bands = []
        for (t, l, b, r), key_class in zip(keys, classes):
            gap = max(t - bottom, top - b, l - right, left - r)
            assert gap >= GAP * CELL  # beyond the FCN's reach from either key (the first probe's margin)
            inside = (t <= top and bottom <= b) or (l <= left and right <= r)
            touches = (top < b and t < bottom) or (left < r and l < right)
            assert inside == touches  # in a band wholly, or off its rows and columns
            if inside:
                bands.append(key_class)
        assert bands == [class_id]


def test_generate_writes_what_the_dataset_reads(tmp_path, capsys):
    root = str(tmp_path / "pairs")
    main(["--root", root, "--train", "3", "--val", "2", "--seed", "4"])
    assert "ready" in capsys.readouterr().out
    dataset = ContextProbePairsDataset(root, "val")
    image, label, path, notes = dataset.load(1)
    expected = render([4, 1, 1], pair_of(1))
    assert np.array_equal(image, expected[0]) and np.array_equal(label, expected[1]) and not notes
    assert [tuple(k) for k in dataset.key_boxes(1)] == expected[2]
