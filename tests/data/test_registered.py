"""Every registered dataset, the toy of tests/toys.py included: checked, trained on and evaluated by the tools."""
import pytest
from helpers import run_tool, tiny_config
from layouts import FIXTURES
from omegaconf import OmegaConf

from segattn.data import DATASETS, build_dataset, dataset_class_names, dataset_palette
from segattn.errors import MissingFileError


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_has_a_fixture(name):
    assert name in FIXTURES, f"dataset {name!r} has no fixture: add a maker of its layout to tests/layouts.py"


def _config(name, tmp_path):
    make, splits, extra = FIXTURES[name]
    root = make(tmp_path / name)
    cfg = tiny_config(str(root), tmp_path / "run", head="ccnet", max_iters=2, val_interval=2)
    cfg.imports = ["toys"]
    cfg.data = OmegaConf.merge(cfg.data, {"dataset": name, "train_split": splits[0], "val_split": splits[1],
                                          "crop_size": [32, 48], "scale_range": [0.5, 1.0], **extra})
    cfg.model.num_classes = len(dataset_class_names(cfg.data))
    cfg.eval.scales = [1.0]
    return cfg


@pytest.mark.parametrize("name", DATASETS.names())
def test_class_names_palette_and_labels_from_the_registry(name, tmp_path):
    cfg = _config(name, tmp_path)
    names, palette = dataset_class_names(cfg.data), dataset_palette(cfg.data)
    assert len(palette) >= len(names) == cfg.model.num_classes
    dataset = build_dataset(cfg.data, cfg.data.val_split)
    image, mask, _, notes = dataset.load(0)
    assert image.shape[:2] == mask.shape and not notes
    assert set(mask.ravel().tolist()) <= set(range(len(names))) | {cfg.data.ignore_index}
    assert (mask < len(names)).any()  # the fixture's labels reach train ids, not only ignore


@pytest.mark.parametrize("name", DATASETS.names())
def test_a_missing_root_is_an_error_naming_it(name, tmp_path):
    cfg = _config(name, tmp_path)
    cfg.data.root = str(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="nowhere"):
        build_dataset(cfg.data, cfg.data.train_split)


@pytest.mark.parametrize("name", DATASETS.names())
def test_train_eval_and_check_dataset_end_to_end(name, tmp_path):
    cfg = _config(name, tmp_path)
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    out = run_tool("check_dataset.py", tmp_path / "cfg.yaml", "--no-progress").stdout
    assert "dataset OK" in out
    out = run_tool("train.py", tmp_path / "cfg.yaml", "--no-progress").stdout
    assert "mIoU" in out
    out = run_tool("eval.py", tmp_path / "cfg.yaml", "--checkpoint", tmp_path / "run" / "t" / "best.pth",
                   "--no-progress").stdout
    assert f"| {dataset_class_names(cfg.data)[0]} |" in out and "mIoU" in out
