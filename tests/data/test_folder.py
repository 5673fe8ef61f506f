"""A user's own folder dataset: masks hold class indices; anything else in them is ignore, as promised."""
import numpy as np
import torch
from omegaconf import OmegaConf

from helpers import tiny_config
from layouts import make_folder, write_grey
from segattn.data import build_dataset
from segattn.data.io import read_mask


def test_labels_at_or_above_num_classes_are_trained_as_ignore(tmp_path):
    """A mask value 7 in a three-class folder set (say, a class the user dropped) becomes ignore (255) where the
    loss reads it, instead of an index past the classes (an IndexError on the CPU, a device assert on a GPU)."""
    from segattn.engine.losses import build_loss

    root = make_folder(tmp_path / "folder")
    path = root / "train" / "masks" / "img0.png"
    raw = read_mask(str(path))
    raw[:5, :5] = 7
    raw[5:8, :5] = 3
    write_grey(path, raw)
    cfg = tiny_config(str(root), tmp_path / "run")
    cfg.data = OmegaConf.merge(cfg.data, {"dataset": "folder", "class_names": ["sky", "tree", "road"],
                                          "train_split": "train", "val_split": "val"})
    cfg.model.num_classes = 3
    dataset = build_dataset(cfg.data, "train", need_labels=True)
    _, mask, _, notes = dataset.load(0)
    assert (mask[:8, :5] == 255).all() and set(np.unique(mask)) <= {0, 1, 2, 255}
    assert notes  # still said, as before
    criterion = build_loss(cfg, {})
    logits = torch.randn(1, 3, *mask.shape, requires_grad=True)
    loss, _ = criterion({"main": logits}, torch.from_numpy(mask.astype(np.int64))[None])
    assert torch.isfinite(loss)


def test_a_float_image_with_nan_or_inf_is_refused_and_reported(tmp_path):
    """Per-image min-max scaling turned one infinite pixel into an all-black image, and check_dataset said OK: the
    image is refused in one line, and the dataset check lists it."""
    import cv2
    import pytest

    from segattn.data.check import check_split
    from segattn.data.io import UnreadableImage, read_image

    root = make_folder(tmp_path / "folder")
    image = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    image[3, 4, 1] = np.inf
    image[5, 6, 0] = np.nan
    path = root / "val" / "images" / "img0.tif"
    (root / "val" / "images" / "img0.jpg").unlink()
    assert cv2.imwrite(str(path), image)
    with pytest.raises(UnreadableImage, match=r"img0.tif: 2 pixel values are NaN or infinite"):
        read_image(str(path))
    data = OmegaConf.create({"dataset": "folder", "root": str(root), "class_names": ["sky", "tree", "road"],
                             "ignore_index": 255})
    report = check_split(data, "val")
    assert not report.ok and "NaN or infinite" in str(report)
