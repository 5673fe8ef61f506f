"""The attention explorer without a browser: what one image and one click give, for every registered head,
and the page's handlers on bad files (the browser test is tests/tools/test_explore.py)."""
import glob
import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import tiny_config
from segattn import build_model
from segattn.analysis.explorer import SCALE_HEIGHT, Explorer, colour_scale
from segattn.data import dataset_class_names, dataset_palette
from segattn.data.io import read_image
from segattn.engine.predictor import eval_settings, predict_labels
from segattn.models import HEADS
from segattn.models.maps import MAP_KINDS

CPU = torch.device("cpu")
EXPECTED = {"ccnet": {"cca_loop1", "cca_effective"}, "danet": {"pam"}, "nonlocal": {"nonlocal"}}


def explorer_for(head, demo_root, tmp_path, max_side=1024):
    cfg = tiny_config(demo_root, tmp_path, head=head)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True)).eval()
    for p in model.parameters():
        if p.numel() == 1:  # gammas: let attention change the features
            p.data.fill_(1.0)
    return Explorer(model, cfg, CPU, dataset_class_names(cfg.data), dataset_palette(cfg.data), max_side)


def demo_image(demo_root):
    return read_image(sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0])


def band(explorer, opened, y, x):
    """True on the view pixels of the query cell's feature row and column."""
    gh, gw = opened.maps["grid"]
    vh, vw = opened.view.shape[:2]
    qy, qx = explorer.cell(opened, y, x)
    rows = np.arange(vh)[:, None] * gh // vh == qy
    cols = np.arange(vw)[None, :] * gw // vw == qx
    return rows | cols


@pytest.mark.parametrize("head", HEADS.names())
def test_every_registered_head_is_explored_or_says_why_not(head, demo_root, tmp_path):
    explorer = explorer_for(head, demo_root, tmp_path)
    image = demo_image(demo_root)
    opened = explorer.open(image)
    assert opened.view.shape == image.shape and opened.labels.shape == image.shape[:2]
    np.testing.assert_array_equal(opened.labels, predict_labels(explorer.model, explorer.cfg, image, CPU))
    legend = explorer.legend(opened)
    assert abs(sum(share for _, _, share in legend) - 1) < 1e-9
    assert [n for n, _, _ in legend][0] == explorer.class_names[np.bincount(opened.labels.ravel()).argmax()]
    pictures, channels, where = explorer.click(opened, 100, 300, opacity=1.0)
    assert "pixel (y=100, x=300)" in where and "predicted " + explorer.class_names[opened.labels[100, 300]] in where
    if not opened.maps:
        assert pictures == {} and channels == [] and "has no attention maps" in opened.no_maps
        return
    assert set(pictures) == EXPECTED.get(head, set(pictures)) and (pictures or channels)
    h, w = image.shape[:2]  # the map over the image, its colour scale below
    assert all(p.shape == (h + SCALE_HEIGHT, w, 3) and p.dtype == np.uint8 for p in pictures.values())
    # a table of channels where a kind of the head's is one (DANet's channel attention, EncNet's gates)
    assert bool(channels) == any(MAP_KINDS[kind].table for kind in HEADS[head].map_kinds)


def test_ccnet_one_loop_lights_only_the_query_row_and_column(demo_root, tmp_path):
    """At opacity 1 the picture is the heat map: off the cross every pixel is the colour map's zero."""
    explorer = explorer_for("ccnet", demo_root, tmp_path)
    opened = explorer.open(demo_image(demo_root))
    for y, x in ((100, 300), (5, 5), (255, 511)):
        pictures, _, _ = explorer.click(opened, y, x, opacity=1.0)
        on = band(explorer, opened, y, x)
        ring = np.hypot(*np.mgrid[:on.shape[0], :on.shape[1]] - np.array([y, x])[:, None, None]) <= 12
        lum = pictures["cca_loop1"][:on.shape[0]].astype(float).mean(-1)
        assert lum[~on & ~ring].max() <= 2  # inferno's zero is (0, 0, 4)
        assert lum[on & ~ring].mean() > 40
        composed = pictures["cca_effective"][:on.shape[0]].astype(float).mean(-1)
        assert composed[~on & ~ring].max() > 2  # two loops reach beyond the cross


def test_opacity_and_clip(demo_root, tmp_path):
    explorer = explorer_for("nonlocal", demo_root, tmp_path)
    opened = explorer.open(demo_image(demo_root))
    clear, _, _ = explorer.click(opened, 50, 50, opacity=0.0)
    ring = np.zeros(opened.view.shape[:2], bool)
    ring[30:71, 30:71] = True
    np.testing.assert_array_equal(clear["nonlocal"][:ring.shape[0]][~ring], opened.view[~ring])  # opacity 0: the image itself
    full, _, _ = explorer.click(opened, 50, 50, opacity=1.0, clip=1.0)
    clipped, _, _ = explorer.click(opened, 50, 50, opacity=1.0, clip=0.1)
    top = np.array([252, 255, 164])  # inferno at 1: weights at or above the clip
    saturated = lambda p: (np.abs(p[:ring.shape[0]][~ring].astype(int) - top).max(-1) <= 2).mean()  # noqa: E731
    assert saturated(clipped["nonlocal"]) > saturated(full["nonlocal"])


def test_a_1x1_image_and_a_huge_one(demo_root, tmp_path):
    """1x1: a 1x1 grid, the click answered. 6000x4000: sliding windows, a view and maps of bounded size."""
    explorer = explorer_for("ccnet", demo_root, tmp_path, max_side=256)
    tiny = explorer.open(np.full((1, 1, 3), 128, np.uint8))
    assert tiny.labels.shape == (1, 1) and tiny.maps["grid"] == (1, 1)
    pictures, _, where = explorer.click(tiny, 0, 0)
    assert pictures["cca_loop1"].shape == (1 + SCALE_HEIGHT, 1, 3) and "feature cell (y=0, x=0) of 1 x 1" in where
    # a sliding-window prediction (as for any image far larger than a window), kept short on 2 cores
    explorer.cfg.eval.merge_with({"scales": [0.05], "crop_size": [64, 96], "stride": [48, 64]})
    rng = np.random.default_rng(0)
    image = np.repeat(np.repeat(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), 100, 0), 100, 1)
    assert eval_settings(explorer.cfg.eval, image).mode == "slide"
    huge = explorer.open(image)
    assert huge.size == (4000, 6000) and huge.view.shape == (683, 1024, 3) and huge.labels.shape == (683, 1024)
    assert max(huge.maps["grid"]) == 256 // 8
    pictures, _, where = explorer.click(huge, 682, 1023)
    assert "pixel (y=3994, x=5994)" in where and pictures["cca_loop1"].shape == (683 + SCALE_HEIGHT, 1024, 3)


def test_page_says_why_a_file_cannot_be_opened_and_keeps_the_image(demo_root, tmp_path):
    pytest.importorskip("gradio", reason="the explorer's page comes with the demo extra")
    from segattn.analysis.explorer_app import ExplorerPage

    page = ExplorerPage(explorer_for("danet", demo_root, tmp_path))
    path = sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0]
    out = page.open_file(path)
    prediction, legend, status, opened = out[:4]
    assert prediction.shape == (256, 512, 3) and "(512 x 256)" in status
    assert legend.count("background:rgb(") == len(page.explorer.legend(opened))
    assert page.explorer.legend(opened)[0][0] in legend
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for bad, message in ((text, "not a readable image"), (tmp_path / "gone.png", "no such file")):
        out = page.open_file(str(bad))
        assert message in out[2] and str(bad) in out[2]
        assert all(v == {"__type__": "update"} for v in out[:2] + out[3:])  # nothing else on the page changes
    drawn = page.draw(opened, (10, 20), 0.6, 1.0)
    query, pam = drawn[0], drawn[3]
    assert query == (10, 20) and pam["value"].shape == (256 + SCALE_HEIGHT, 512, 3)
    assert "| channel | weight |" in drawn[-2] and "Answered in" in drawn[-1]


def test_converted_mmseg_danet_checkpoint(demo_root, tmp_path):
    """mmsegmentation's DANet, saved as mmseg saves it and converted by tools/convert_checkpoint.py's code."""
    from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

    stub_mmcv_ext()
    pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")
    from segattn.configure import load_tool_config
    from segattn.engine.predictor import load_model
    from segattn.interop.convert import convert_checkpoint
    from segattn.interop.mmseg_peer import build_mmseg_model, randomize, save_like_mmseg

    name = "danet_r50-d8_769x769_40k_cityscapes"
    config = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "mmseg", f"{name}.yaml")
    save_like_mmseg(randomize(build_mmseg_model(name), 1), str(tmp_path / "mmseg.pth"))
    cfg = load_tool_config(config, [f"data.root={demo_root}", "data.test_resize=null"])  # one 769 window
    convert_checkpoint("mmseg", str(tmp_path / "mmseg.pth"), cfg, str(tmp_path / "ours.pth"), config, False)
    model, _ = load_model(cfg, str(tmp_path / "ours.pth"), CPU)
    explorer = Explorer(model, cfg, CPU, dataset_class_names(cfg.data), dataset_palette(cfg.data))
    opened = explorer.open(demo_image(demo_root))
    assert opened.maps["grid"] == (32, 64)
    pictures, channels, _ = explorer.click(opened, 128, 256)
    assert set(pictures) == {"pam"} and len(channels) == 10


def test_each_map_has_a_colour_scale_from_zero_to_the_weight_drawn_at_full_colour():
    """The strip under a map: inferno from black-purple to yellow, 0 at the left; the right end labelled with the
    weight that saturates (the map's maximum, or the clip's share of it with a '+')."""
    import cv2

    strip = colour_scale(400, 0.02, 1.0)
    assert strip.shape == (SCALE_HEIGHT, 400, 3)
    ramp = strip[10, 8:392].astype(int)
    assert ramp[0].sum() < 30 and ramp[-1].sum() > 600  # inferno's dark end, then its bright one
    assert (np.diff(ramp.sum(-1)) >= -3).all()  # brighter left to right
    clipped = colour_scale(400, 0.02, 0.5)
    assert not np.array_equal(strip[18:], clipped[18:])  # "0.02" against "0.01+"
    text = cv2.getTextSize("0.01+", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
    assert (clipped[18:, 392 - text:392] < 128).any() and (clipped[18:, 8:16] < 128).any()
