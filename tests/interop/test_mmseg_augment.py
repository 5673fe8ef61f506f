"""Augmentation as mmsegmentation augments: each train transform against the real mmsegmentation 1.2.2 one.

Given the same random draws (recorded from mmsegmentation's numpy calls, or
scripted into them), every transform gives the same image and label, bit for
bit; the recipes' pipelines hold the transforms in mmsegmentation's order with
its configs' parameters; over 2000 draws each random parameter's distribution
matches mmsegmentation's (a two-sample test per parameter, p > 0.001).
"""
import glob
import os

import albumentations as A
import numpy as np
import pytest
import torch

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")
stats = pytest.importorskip("scipy.stats")

from segattn.config import load_config  # noqa: E402
from segattn.data import train_transform  # noqa: E402
from segattn.data.augment import (  # noqa: E402
    CatMaxRatioCrop,
    PhotoMetricDistortion,
    RandomRescale,
    choose_crop,
    crop_margins,
    pad_bottom_right,
    photometric_distortion,
)
from segattn.data.transforms import MEAN_255, STD_255, normalize_image  # noqa: E402
from segattn.interop.mmseg_peer import import_mmseg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_, _MODELS = import_mmseg()
from mmseg.registry import TRANSFORMS  # noqa: E402

P_MIN = 1e-3


def build(**cfg):
    return TRANSFORMS.build(cfg)


def results(image_rgb, label):
    """What LoadImageFromFile + LoadAnnotations hand the pipeline: a BGR image and its label."""
    img = np.ascontiguousarray(image_rgb[:, :, ::-1])
    return {"img": img, "img_shape": img.shape[:2], "ori_shape": img.shape[:2], "gt_seg_map": label.copy(),
            "seg_fields": ["gt_seg_map"]}


def rgb(out):
    return np.ascontiguousarray(out["img"][:, :, ::-1])


def scene(h, w, seed=0, dominant=0.0):
    """A random image and a label of 8x8 blocks in 0..5 with some 255; ``dominant``: the share of class 0."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    blocks = rng.integers(1, 6, (h // 8 + 1, w // 8 + 1))
    blocks[rng.random(blocks.shape) < dominant] = 0
    blocks[rng.random(blocks.shape) < 0.05] = 255
    return image, np.kron(blocks, np.ones((8, 8), np.int64))[:h, :w].astype(np.uint8)


class Recording:
    """A numpy function replaced by one that draws from its own seeded stream and records what it returned."""

    def __init__(self, name, seed=0):
        self.name, self.stream, self.values = name, np.random.RandomState(seed), []

    def __call__(self, *args, **kwargs):
        value = getattr(self.stream, self.name)(*args, **kwargs)
        self.values.append(value)
        return value


# -- the same draws, the same output -----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [(2049, 1025), (2048, 512), (520, 520)])
@pytest.mark.parametrize("shape", [(64, 128), (75, 100), (101, 70), (1, 1)])
def test_rescale_equals_random_resize(scale, shape, monkeypatch):
    theirs = build(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True)
    ours = RandomRescale(scale, (0.5, 2.0))
    image, label = scene(*shape)
    for u in (0.0, 0.123, 0.5, 0.999):
        monkeypatch.setattr(np.random, "random_sample", lambda u=u: u)
        out = theirs(results(image, label))
        ratio = u * (2.0 - 0.5) + 0.5  # mmcv's draw of the ratio
        assert np.array_equal(ours.apply(image, ratio=ratio), rgb(out))
        assert np.array_equal(ours.apply_to_mask(label, ratio=ratio), out["gt_seg_map"])


@pytest.mark.parametrize("crop", [(64, 64), (48, 200)])  # the second is wider than the image: clipped, not padded
def test_crop_equals_random_crop_with_cat_max_ratio(crop, monkeypatch):
    """mmseg draws corners until one passes (10 checks, the 11th unchecked); replayed, ours ends on the same."""
    retries = exhausted = 0
    for seed in range(60):
        image, label = scene(120, 160, seed, dominant=0.6 + 0.4 * (seed % 3 == 0))
        draws = Recording("randint", seed)
        monkeypatch.setattr(np.random, "randint", draws)
        out = build(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75)(results(image, label))
        replay = iter(int(v) for v in draws.values)
        corner = choose_crop(label, crop, 0.75, 255, lambda: (next(replay), next(replay)))
        assert next(replay, None) is None  # ours drew exactly as often
        t = CatMaxRatioCrop(crop, 0.75, 255)
        assert np.array_equal(t.apply(image, corner=corner), rgb(out))
        assert np.array_equal(t.apply_to_mask(label, corner=corner), out["gt_seg_map"])
        retries += len(draws.values) > 2
        exhausted += len(draws.values) == 22
    assert retries >= 10 and exhausted >= 5  # the rule was exercised, up to its last draw


def test_flip_equals_random_flip():
    image, label = scene(37, 53)
    out = build(type="RandomFlip", prob=1.0)(results(image, label))
    mine = A.Compose([A.HorizontalFlip(p=1.0)])(image=image, mask=label)
    assert np.array_equal(mine["image"], rgb(out)) and np.array_equal(mine["mask"], out["gt_seg_map"])


class Script:
    """mmseg's ``random`` (numpy's) answering ``randint`` and ``uniform`` with scripted values, in order."""

    def __init__(self, calls):
        self.calls = list(calls)

    def _next(self, kind, args):
        expected, value = self.calls.pop(0)
        assert expected == kind, (expected, kind, args)
        return value

    def randint(self, *args):
        return self._next("randint", args)

    def uniform(self, *args):
        return self._next("uniform", args)


def script(p):
    """Our drawn values as the sequence of calls mmseg's PhotoMetricDistortion makes."""
    calls = [("randint", int(p["brightness"] is not None))]
    if p["brightness"] is not None:
        calls.append(("uniform", p["brightness"]))
    contrast = [("randint", int(p["contrast"] is not None))] + ([("uniform", p["contrast"])]
                                                                 if p["contrast"] is not None else [])
    calls.append(("randint", int(p["contrast_first"])))
    if p["contrast_first"]:
        calls += contrast
    calls.append(("randint", int(p["saturation"] is not None)))
    if p["saturation"] is not None:
        calls.append(("uniform", p["saturation"]))
    calls.append(("randint", int(p["hue"] is not None)))
    if p["hue"] is not None:
        calls.append(("randint", p["hue"]))
    if not p["contrast_first"]:
        calls += contrast
    return calls


def test_photometric_equals_photometric_distortion(monkeypatch):
    import mmseg.datasets.transforms.transforms as mm

    theirs = build(type="PhotoMetricDistortion")
    ours = PhotoMetricDistortion()
    ours.set_random_seed(0)
    image, label = scene(40, 56)
    image[:8] = 0  # saturated corners: the clipping counts
    image[-8:] = 255
    seen = set()
    for _ in range(200):
        params = ours.get_params()
        fake = Script(script(params))
        monkeypatch.setattr(mm, "random", fake)
        out = theirs(results(image, label))
        assert not fake.calls
        assert np.array_equal(ours.apply(image, **params), rgb(out)), params
        seen |= {k for k, v in params.items() if v not in (None, False)}
    assert seen == {"brightness", "contrast", "contrast_first", "saturation", "hue"}
    # the extremes of each range, all steps at once
    for params in ({"brightness": 31.99, "contrast": 1.5, "contrast_first": True, "saturation": 0.5, "hue": -18},
                   {"brightness": -32.0, "contrast": 0.5, "contrast_first": False, "saturation": 1.5, "hue": 17}):
        monkeypatch.setattr(mm, "random", Script(script(params)))
        assert np.array_equal(photometric_distortion(image, **params), rgb(theirs(results(image, label))))


@pytest.mark.parametrize("shape", [(30, 41), (41, 30), (41, 41), (1, 1)])
def test_padding_equals_data_preprocessor(shape):
    """Normalise, then pad with 0 (the mean colour) and label 255, below and right, as SegDataPreProcessor."""
    from mmengine.structures import PixelData
    from mmseg.models.data_preprocessor import SegDataPreProcessor
    from mmseg.structures import SegDataSample

    image, label = scene(*shape)
    pre = SegDataPreProcessor(mean=list(MEAN_255), std=list(STD_255), bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                              size=(41, 41))
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(label[None].astype(np.int64))))
    bgr = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))
    out = pre({"inputs": [bgr], "data_samples": [sample]}, training=True)
    x, y = pad_bottom_right(normalize_image(image), torch.from_numpy(label).long(), (41, 41), 255)
    assert torch.equal(x, out["inputs"][0]) and torch.equal(y, out["data_samples"][0].gt_sem_seg.data[0])


@pytest.mark.parametrize("shape", [(30, 41), (41, 30), (1, 1)])
def test_black_padding_equals_pad_step(shape):
    """VOC12aug's ``Pad(size=crop)`` after the colour change: uint8 image 0, label 255, below and right."""
    image, label = scene(*shape)
    out = build(type="Pad", size=(41, 41))(results(image, label))
    mine = A.Compose([A.PadIfNeeded(min_height=41, min_width=41, border_mode=0, fill=0, fill_mask=255,
                                    position="top_left")])(image=image, mask=label)
    assert np.array_equal(mine["image"], rgb(out)) and np.array_equal(mine["mask"], out["gt_seg_map"])


# -- the recipes hold these transforms in mmsegmentation's order, with its parameters -------------------------------
RECIPES = {  # our config -> mmseg's config whose train pipeline and preprocessor it follows
    "mmseg/ccnet_r50-d8_769x769_80k_cityscapes.yaml": "ccnet/ccnet_r50-d8_4xb2-80k_cityscapes-769x769.py",
    "mmseg/ccnet_r50-d8_512x1024_80k_cityscapes.yaml": "ccnet/ccnet_r50-d8_4xb2-80k_cityscapes-512x1024.py",
    "mmseg/danet_r50-d8_512x512_160k_ade20k.yaml": "danet/danet_r50-d8_4xb4-160k_ade20k-512x512.py",
    "mmseg/fcn_r50-d8_512x512_40k_voc12aug.yaml": "fcn/fcn_r50-d8_4xb4-40k_voc12aug-512x512.py",
    "ade20k/base.yaml": "danet/danet_r50-d8_4xb4-160k_ade20k-512x512.py",
    "voc/base.yaml": "fcn/fcn_r50-d8_4xb4-40k_voc12aug-512x512.py",
    "pascal_context/base.yaml": "fcn/fcn_r101-d8_4xb4-80k_pascal-context-59-480x480.py",
    "coco_stuff/base.yaml": "deeplabv3/deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py",
}


@pytest.mark.parametrize("ours", sorted(RECIPES))
def test_recipe_pipeline_is_mmsegs(ours):
    import mmseg
    from mmengine import Config

    cfg = load_config(os.path.join(ROOT, "configs", ours))
    mm = Config.fromfile(os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", RECIPES[ours]))
    steps = [dict(s) for s in mm.train_pipeline if s["type"] not in ("LoadImageFromFile", "LoadAnnotations",
                                                                         "PackSegInputs")]
    pad_step = steps[4:]  # VOC12aug pads in the pipeline too, before normalising
    assert [s["type"] for s in steps] == ["RandomResize", "RandomCrop", "RandomFlip", "PhotoMetricDistortion"] + [
        "Pad"] * len(pad_step)
    resize, crop, flip, photometric = steps[:4]
    preset = train_transform(cfg.data)
    mine = list(preset.pipeline.transforms)
    assert [type(t) for t in mine] == [RandomRescale, CatMaxRatioCrop, A.HorizontalFlip, PhotoMetricDistortion] + [
        A.PadIfNeeded] * len(pad_step)
    if pad_step:
        (pad,) = pad_step
        assert set(pad) == {"type", "size"} and tuple(pad["size"]) == (mine[4].min_height, mine[4].min_width)
        assert (mine[4].fill, mine[4].fill_mask, mine[4].position) == (0, 255, "top_left")  # mmcv's Pad defaults
        assert cfg.data.pad == "black_after"
    else:
        assert cfg.data.pad == "mean" and preset.pad_to == tuple(cfg.data.crop_size)
    assert mine[0].scale == tuple(resize["scale"]) and mine[0].ratio_range == tuple(resize["ratio_range"])
    assert resize["keep_ratio"]
    assert mine[1].crop == tuple(crop["crop_size"]) == tuple(cfg.data.crop_size)
    assert mine[1].cat_max_ratio == crop["cat_max_ratio"] and mine[1].ignore_index == 255
    assert mine[2].p == flip["prob"]
    assert set(photometric) == {"type"}  # mmseg's defaults, which ours are:
    defaults = build(type="PhotoMetricDistortion")
    from segattn.data import augment

    assert (defaults.brightness_delta, (defaults.contrast_lower, defaults.contrast_upper),
            (defaults.saturation_lower, defaults.saturation_upper), defaults.hue_delta) == (
        augment.BRIGHTNESS_DELTA, augment.CONTRAST_RANGE, augment.SATURATION_RANGE, augment.HUE_DELTA)
    pre = mm.model.data_preprocessor
    assert tuple(pre["mean"]) == MEAN_255 and tuple(pre["std"]) == STD_255 and pre["bgr_to_rgb"]
    assert pre["pad_val"] == 0 and pre["seg_pad_val"] == 255 and tuple(pre["size"]) == tuple(cfg.data.crop_size)
    assert preset.normalize and preset.ignore_index == 255


def mmseg_families() -> dict:
    """configs/mmseg files by family (crop and dataset: ``769x769_cityscapes`` ...)."""
    import re

    families = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "mmseg", "*_r*.yaml"))):
        match = re.search(r"_(\d+x\d+)_\d+k_(?:b\d+_)?(\w+)\.yaml$", path)
        families.setdefault(f"{match[1]}_{match[2]}", []).append(path)
    return families


def test_every_configs_mmseg_file_uses_its_familys_pipeline():
    """The configs/mmseg files differ from the four checked above in head, depth and schedule only."""
    from segattn.config import load_config as load

    families = mmseg_families()
    assert sorted(families) == ["512x1024_cityscapes", "512x512_ade20k", "512x512_voc12aug", "769x769_cityscapes"]
    for family, paths in families.items():
        sections = [load(path).data for path in paths]
        assert all(s == sections[0] for s in sections), family


@pytest.mark.parametrize("family", sorted(mmseg_families()))
def test_every_family_evaluates_as_mmseg(family):
    """Each configs/mmseg file evaluates as mmsegmentation's config file of the same name: its test_cfg (whole
    images, or sliding windows of its crop and stride), its test pipeline's keep-ratio Resize, the decode head's
    align_corners (a cascade's last stage's)."""
    import mmseg
    from mmengine import Config

    from segattn.interop.mmseg_peer import mmseg_config_path

    for path in mmseg_families()[family]:
        cfg = load_config(path)
        mm = Config.fromfile(mmseg_config_path(os.path.basename(path)[:-5]))
        test_cfg = mm.model.test_cfg
        assert cfg.eval.mode == test_cfg.mode, path
        if test_cfg.mode == "slide":
            assert (tuple(cfg.eval.crop_size), tuple(cfg.eval.stride)) == (tuple(test_cfg.crop_size),
                                                                           tuple(test_cfg.stride)), path
        (resize,) = [s for s in mm.test_pipeline if s["type"] == "Resize"]
        assert resize["keep_ratio"] and tuple(cfg.data.test_resize) == tuple(resize["scale"]), path
        heads = mm.model.decode_head if isinstance(mm.model.decode_head, list) else [mm.model.decode_head]
        assert cfg.model.align_corners == heads[-1].get("align_corners", False), path
    assert mmseg.__version__ == "1.2.2"


# -- over 2000 draws, the same distributions -----------------------------------------------------------------------
N = 2000


def same_distribution(ours, theirs, what):
    p = stats.ks_2samp(np.asarray(ours, float), np.asarray(theirs, float)).pvalue
    assert p > P_MIN, f"{what}: KS p = {p:.2g}"


def same_rate(ours, theirs, what):
    ours, theirs = np.asarray(ours, bool), np.asarray(theirs, bool)
    table = [[ours.sum(), (~ours).sum()], [theirs.sum(), (~theirs).sum()]]
    p = stats.fisher_exact(table).pvalue
    assert p > P_MIN, f"{what}: Fisher p = {p:.2g} ({ours.mean():.3f} vs {theirs.mean():.3f})"


def test_scale_crop_and_flip_distributions_match_mmseg():
    # a coordinate image: red = row, green = column, so a crop's corner and a flip can be read back
    h, w = 120, 160
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(h)[:, None]
    image[..., 1] = np.arange(w)[None, :]
    _, label = scene(h, w, 5, dominant=0.7)
    np.random.seed(0)
    mm_resize = build(type="RandomResize", scale=(200, 100), ratio_range=(0.5, 2.0), keep_ratio=True)
    mm_crop = build(type="RandomCrop", crop_size=(64, 64), cat_max_ratio=0.75)
    mm_flip = build(type="RandomFlip", prob=0.5)
    small = np.zeros((10, 20, 3), np.uint8)
    theirs = {"height": [], "y": [], "x": [], "flip": []}
    for _ in range(N):
        theirs["height"].append(mm_resize(results(small, small[..., 0]))["img"].shape[0])
        out = rgb(mm_crop(results(image, label)))
        theirs["y"].append(out[0, 0, 0])
        flipped = rgb(mm_flip(results(out, out[..., 0])))
        theirs["x"].append(min(flipped[0, 0, 1], flipped[0, -1, 1]))
        theirs["flip"].append(flipped[0, 0, 1] > flipped[0, -1, 1])
    resize = A.Compose([RandomRescale((200, 100), (0.5, 2.0))], seed=1)
    crop_flip = A.Compose([CatMaxRatioCrop((64, 64), 0.75, 255), A.HorizontalFlip(p=0.5)], seed=1)
    ours = {"height": [], "y": [], "x": [], "flip": []}
    for _ in range(N):
        ours["height"].append(resize(image=small, mask=small[..., 0])["image"].shape[0])
        out = crop_flip(image=image, mask=label)["image"]
        ours["y"].append(out[0, 0, 0])
        ours["x"].append(min(out[0, 0, 1], out[0, -1, 1]))
        ours["flip"].append(out[0, 0, 1] > out[0, -1, 1])
    for key in ("height", "y", "x"):
        same_distribution(ours[key], theirs[key], key)
    same_rate(ours["flip"], theirs["flip"], "flip")
    # the retry rule shapes the corners: without it, ours differ (the test can tell)
    plain = A.Compose([CatMaxRatioCrop((64, 64), 1.0, 255)], seed=1)
    margins = crop_margins(label.shape, (64, 64))
    plain_y = [plain(image=image, mask=label)["image"][0, 0, 0] for _ in range(N)]
    assert max(plain_y) <= margins[0]
    assert stats.ks_2samp(plain_y, theirs["y"]).pvalue < P_MIN


def parse_photometric(calls):
    """mmseg's PhotoMetricDistortion draws, recorded in call order, as one dict per image."""
    calls = iter(calls)
    out = []
    for first in calls:
        p = {}
        p["brightness"] = next(calls)[1] if first[1] else None

        def contrast():
            p["contrast"] = next(calls)[1] if next(calls)[1] else None
        p["contrast_first"] = bool(next(calls)[1])
        if p["contrast_first"]:
            contrast()
        p["saturation"] = next(calls)[1] if next(calls)[1] else None
        p["hue"] = next(calls)[1] if next(calls)[1] else None
        if not p["contrast_first"]:
            contrast()
        out.append(p)
    return out


def test_photometric_distributions_match_mmseg(monkeypatch):
    import mmseg.datasets.transforms.transforms as mm

    stream, calls = np.random.RandomState(0), []

    class Recorder:
        def randint(self, *args):
            calls.append(("randint", stream.randint(*args)))
            return calls[-1][1]

        def uniform(self, *args):
            calls.append(("uniform", stream.uniform(*args)))
            return calls[-1][1]

    monkeypatch.setattr(mm, "random", Recorder())
    theirs_t = build(type="PhotoMetricDistortion")
    image, label = scene(4, 4)
    for _ in range(N):
        theirs_t(results(image, label))
    theirs = parse_photometric(calls)
    ours_t = PhotoMetricDistortion()
    ours_t.set_random_seed(1)
    ours = [ours_t.get_params() for _ in range(N)]
    for key in ("brightness", "contrast", "saturation", "hue"):
        same_rate([p[key] is not None for p in ours], [p[key] is not None for p in theirs], f"{key} applied")
        same_distribution([p[key] for p in ours if p[key] is not None],
                          [p[key] for p in theirs if p[key] is not None], key)
    same_rate([p["contrast_first"] for p in ours], [p["contrast_first"] for p in theirs], "contrast first")
    hues = [[sum(p["hue"] == v for p in side) for v in range(-18, 18)] for side in (ours, theirs)]
    assert stats.chi2_contingency(hues).pvalue > P_MIN
    assert {p["hue"] for p in ours if p["hue"] is not None} == set(range(-18, 18))  # -18..17, as numpy's randint
