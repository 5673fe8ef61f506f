"""The context probe's guarantee: the key is the only cue, and it lies where the probe says it does."""
import numpy as np
import pytest

from segattn.data.context_probe import (CELL, ELSEWHERE, GAP, KEY, ROW_COLUMN, ContextProbeDataset, generate, key_buckets,
                                        main, read_keys, render)
from segattn.errors import MissingFileError


@pytest.mark.parametrize("seed", range(6))
def test_without_its_key_an_image_is_the_same_for_every_class(seed):
    images = [render([7, seed], c, key=False)[0] for c in (1, 2, 3, 4)]
    assert all(np.array_equal(images[0], other) for other in images[1:])
    keyed = [render([7, seed], c) for c in (1, 2, 3, 4)]
    (t, l, b, r) = keyed[0][2]
    outside = np.ones(images[0].shape[:2], bool)
    outside[t:b, l:r] = False
    for c, (image, label, box) in enumerate(keyed, start=1):
        assert box == keyed[0][2] and np.array_equal(image[outside], images[0][outside])  # only the key differs
        assert set(np.unique(label)) == {0, c}  # every object and the key: the key's class
    colours = [image[t + KEY * CELL // 2, l + KEY * CELL // 2].astype(int) for image, _, _ in keyed]
    assert len({tuple(c) for c in colours}) == 4


def _cell_boxes(label, key_box):
    """Each object's cell box (connected regions of label > 0, the key's box left out)."""
    import cv2

    objects = (label > 0).astype(np.uint8)
    t, l, b, r = key_box
    objects[t:b, l:r] = 0
    count, regions = cv2.connectedComponents(objects, connectivity=4)
    for k in range(1, count):
        ys, xs = np.nonzero(regions == k)
        yield ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


@pytest.mark.parametrize("seed", range(20))
def test_objects_are_on_the_key_rows_or_columns_or_far_from_both(seed):
    gap = GAP
    _, label, key_box = render([3, seed], 2)
    t, l, b, r = key_box
    buckets = key_buckets(label, key_box)
    assert (buckets[t:b, l:r] == 0).all()  # the key's own pixels are not scored
    for top, left, bottom, right in _cell_boxes(label, key_box):
        assert top % CELL == left % CELL == bottom % CELL == right % CELL == 0
        row_gap = max(t - bottom, top - b)  # pixels between the object and the key's rows (< 0: they overlap)
        col_gap = max(l - right, left - r)
        assert max(row_gap, col_gap) >= gap * CELL  # beyond every pixel's receptive field (test_probe.py)
        on_rows = t <= top and bottom <= b
        on_cols = l <= left and right <= r
        if on_rows or on_cols:
            assert (buckets[top:bottom, left:right] == ROW_COLUMN).all()
        else:
            assert min(row_gap, col_gap) >= gap * CELL  # off the key's rows and columns, by the same margin
            assert (buckets[top:bottom, left:right] == ELSEWHERE).all()


def test_both_kinds_of_object_are_common():
    kinds = np.zeros(3)
    for i in range(60):
        _, label, key_box = render([0, 0, i], 1)
        kinds += np.bincount(key_buckets(label, key_box).ravel(), minlength=3) > 0
    assert kinds[ROW_COLUMN] >= 40 and kinds[ELSEWHERE] >= 20


def test_generate_writes_the_layout_the_dataset_reads(tmp_path, capsys):
    root = str(tmp_path / "probe")
    main(["--root", root, "--train", "4", "--val", "3", "--seed", "1"])
    assert "ready" in capsys.readouterr().out
    dataset = ContextProbeDataset(root, "val")
    assert len(dataset) == 3 and set(read_keys(root, "val")) == {"probe_00000", "probe_00001", "probe_00002"}
    image, label, path, notes = dataset.load(1)
    assert image.shape == (256, 256, 3) and not notes and path.endswith("probe_00001.png")
    expected = render([1, 1, 1], 2)
    assert np.array_equal(image, expected[0]) and np.array_equal(label, expected[1])
    assert tuple(dataset.key_box(1)) == expected[2]
    mtime = (tmp_path / "probe" / ".complete").stat().st_mtime_ns
    generate(root, 4, 3, seed=1, progress=False)  # complete: not written again
    assert (tmp_path / "probe" / ".complete").stat().st_mtime_ns == mtime


def test_generate_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("not a probe")
    from segattn.errors import ConfigError

    with pytest.raises(ConfigError, match="mine.txt"):
        generate(str(tmp_path), 2, 1, progress=False)


def test_missing_keys_file_names_the_way_to_write_it(tmp_path):
    with pytest.raises(MissingFileError, match="segattn.data.context_probe"):
        read_keys(str(tmp_path), "val")
