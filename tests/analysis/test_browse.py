"""tools/browse_dataset.py and what it draws: labels as read or augmented, unknown label values marked."""
import glob
import os
import shutil

import cv2
import numpy as np
from omegaconf import OmegaConf

from helpers import run_tool, tiny_config
from segattn.analysis.browse import browse_samples, draw
from segattn.data import build_dataset, train_transform


def damaged_copy(demo_root, tmp_path):
    """The tiny demo set with a 60 x 100 block of label id 77 (no Cityscapes id) in the first train label."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    label = sorted(glob.glob(str(root / "gtFine" / "train" / "*" / "*_labelIds.png")))[0]
    mask = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    mask[100:160, 200:300] = 77
    cv2.imwrite(label, mask)
    return str(root)


def test_unknown_values_are_marked_as_read_and_after_augmentation(demo_root, tmp_path):
    cfg = tiny_config(damaged_copy(demo_root, tmp_path), tmp_path)
    dataset = build_dataset(cfg.data, "train")
    plain, clean = browse_samples(dataset, [0, 1])
    assert plain.unknown.sum() == 6000 and not clean.unknown.any()
    assert (plain.mask[plain.unknown] == 255).all() and plain.image.shape == (256, 512, 3)
    picture = draw(plain, dataset.palette)
    assert set(np.unique(picture[plain.unknown])) == {0, 255}  # the checkerboard
    augmented, = browse_samples(dataset, [0], train_transform(cfg.data), seed=3, num_classes=19)
    again, = browse_samples(dataset, [0], train_transform(cfg.data), seed=3, num_classes=19)
    np.testing.assert_array_equal(augmented.image, again.image)  # seeded per sample
    assert augmented.image.shape == (64, 96, 3) and augmented.unknown.any()
    assert (augmented.mask[augmented.unknown] == 255).all() and not (augmented.mask == 254).any()


def test_tool_writes_the_grid(demo_root, tmp_path):
    cfg = tiny_config(damaged_copy(demo_root, tmp_path), tmp_path)
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    proc = run_tool("browse_dataset.py", tmp_path / "cfg.yaml", "--augmented", "--num", "3", "--output",
                    tmp_path / "grid.png")
    assert "3 samples of train, after the training augmentation; 1 with label values" in proc.stdout
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid is not None and grid.shape[1] > 800
    assert os.path.getsize(tmp_path / "grid.png") > 10000


def test_the_grid_fills_its_rows_where_the_count_allows():
    """6 samples are drawn 3 x 2 (not 4 + 2 with two empty cells); up to 4 in one row; 7 as 4 + 3."""
    from segattn.analysis.browse import grid_columns

    assert [grid_columns(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 12)] == [1, 2, 3, 4, 3, 3, 4, 4, 3, 4]
