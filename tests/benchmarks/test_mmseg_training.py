"""benchmarks/mmseg_training.py: mmsegmentation's side trains the network and recipe of segattn's config."""
import os

import numpy as np
import pytest
import torch
from helpers import ROOT, tiny_demo

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")

import mmseg_training  # noqa: E402

from segattn.config import load_config  # noqa: E402
from segattn.interop.mmseg import convert_state_dict  # noqa: E402
from segattn.interop.mmseg_peer import import_mmseg, randomize  # noqa: E402
from segattn.models import build_model  # noqa: E402


def test_mmseg_side_builds_the_same_network_and_recipe(tmp_path):
    _, MODELS = import_mmseg()
    cfg = load_config(os.path.join(ROOT, mmseg_training.CONFIG))
    mm = mmseg_training.mmseg_config(cfg, str(tmp_path / "data"), str(tmp_path / "work"), seed=3)
    theirs = randomize(MODELS.build(mm.model), seed=1).eval()
    ours = build_model(cfg).eval()
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), ours, "mmseg"))  # every key fits
    x = torch.randn(1, 3, 97, 97)
    with torch.no_grad():
        expected = theirs.encode_decode(x, [dict(img_shape=(97, 97), ori_shape=(97, 97))])
        got = ours(x)["main"]
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-4
    steps = {s.type: s for s in mm.train_pipeline}
    assert steps["RandomResize"].scale == tuple(cfg.data.train_scale) and tuple(mm.model.data_preprocessor.size) == (
        97, 97) == steps["RandomCrop"].crop_size
    assert steps["RandomCrop"].cat_max_ratio == cfg.data.cat_max_ratio
    assert mm.train_dataloader.batch_size == cfg.train.batch_size and mm.train_cfg.max_iters == cfg.train.max_iters
    assert mm.param_scheduler[0].end == cfg.train.max_iters and mm.param_scheduler[0].eta_min == cfg.train.min_lr
    assert mm.randomness.seed == 3


def test_label_train_ids_as_mmsegs_converter_writes_them(tmp_path):
    import cv2

    from segattn.data import CityscapesDataset

    demo = tiny_demo(tmp_path)
    mmseg_training.label_train_ids(demo, str(tmp_path / "mm"))
    ours = CityscapesDataset(demo, "val")
    for i in range(len(ours)):
        label_path = ours.pairs[i][1]
        name = os.path.relpath(label_path, demo).replace("_labelIds", "_labelTrainIds")
        written = cv2.imread(str(tmp_path / "mm" / name), cv2.IMREAD_UNCHANGED)
        mask = ours[i][1]
        assert np.array_equal(written, np.asarray(mask))
