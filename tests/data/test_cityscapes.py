import numpy as np
import pytest

from segattn.data.cityscapes import (CLASS_NAMES, PALETTE, CityscapesDataset, ids_to_train_ids, train_ids_to_ids)
from segattn.data.io import write_png

# The official table (cityscapesScripts helpers/labels.py), written out independently: id -> trainId
OFFICIAL = {0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2, 12: 3,
            13: 4, 14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
            26: 13, 27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18}


def test_label_mapping_matches_official_table():
    mask = np.array(list(OFFICIAL) + [34, 200, 255], np.uint8).reshape(1, -1)  # every id, plus strays
    mapped = ids_to_train_ids(mask)[0]
    assert list(mapped[:34]) == list(OFFICIAL.values())
    assert list(mapped[34:]) == [255, 255, 255]
    assert len(CLASS_NAMES) == len(PALETTE) == 19


def test_train_ids_round_trip():
    train = np.arange(19, dtype=np.uint8)[None]
    ids = train_ids_to_ids(train)
    assert list(ids[0]) == [k for k, v in sorted(OFFICIAL.items(), key=lambda kv: kv[1]) if v != 255]
    np.testing.assert_array_equal(ids_to_train_ids(ids), train)


def _tree(root, split, names, label_kind="labelIds", size=(8, 12)):
    for city, name in names:
        img_dir = root / "leftImg8bit" / split / city
        gt_dir = root / "gtFine" / split / city
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        write_png(str(img_dir / f"{name}_leftImg8bit.png"), np.full((*size, 3), 100, np.uint8))
        write_png(str(gt_dir / f"{name}_gtFine_{label_kind}.png"), np.full(size, 26, np.uint8))


def test_discovery_and_loading(tmp_path):
    _tree(tmp_path, "val", [("zurich", "zurich_000001_000019"), ("bern", "bern_000000_000019")])
    ds = CityscapesDataset(str(tmp_path), "val")
    assert len(ds) == 2 and ds.pairs[0][0].endswith("bern_000000_000019_leftImg8bit.png")
    image, mask, _, notes = ds[0]
    assert image.shape == (8, 12, 3) and mask.dtype == np.uint8 and (mask == 13).all()  # car id 26 -> 13
    assert notes == []


def test_train_id_labels_are_not_remapped(tmp_path):
    _tree(tmp_path, "train", [("a", "a_000000_000019")], label_kind="labelTrainIds")
    _, mask, _, notes = CityscapesDataset(str(tmp_path), "train")[0]
    # taken as train ids, not remapped as labelIds (where 26 is car, train id 13): 26 is none of the 19 train ids,
    # so it is trained as ignore, as the note says
    assert (mask == 255).all()
    assert len(notes) == 1 and "label values [26] are not ids of this dataset" in notes[0]  # 19 train ids only


def test_missing_dataset_error_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/train.*cityscapes-dataset.com.*demo"):
        CityscapesDataset(str(tmp_path / "nowhere"), "train")


def test_half_present_dataset_error(tmp_path):
    _tree(tmp_path, "train", [("a", "a_000000_000019"), ("a", "a_000001_000019")])
    (tmp_path / "gtFine/train/a/a_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 2 images .* have no label .*a_000001_000019"):
        CityscapesDataset(str(tmp_path), "train")
