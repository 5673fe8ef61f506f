"""The training transforms albumentations lacks, written as mmsegmentation 1.x defines them.

mmsegmentation's recipe (``configs/_base_/datasets/*.py``) trains with
``RandomResize(scale, ratio_range, keep_ratio=True)``, ``RandomCrop(crop,
cat_max_ratio=0.75)`` and ``PhotoMetricDistortion``; albumentations has
none of the three in that form, so they are here, each split in two: a pure
function of the image, the mask and the drawn values (what the parity tests
hold to mmsegmentation's transform given the same draws), and an albumentations
transform that draws those values from its own seeded generator (so
``Compose.set_random_seed`` makes a sample's augmentation reproducible).
"""
import albumentations as A
import cv2
import numpy as np


def keep_ratio_size(h: int, w: int, scale) -> tuple:
    """mmcv's ``rescale_size``: the largest (h, w) of the same ratio with long edge <= max(scale), short <= min."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


# -- RandomResize(scale, ratio_range, keep_ratio=True) ----------------------------------------------------------------
def ratio_scale(scale, ratio: float) -> tuple:
    """The target scale for a drawn ratio, truncated as mmcv's ``RandomResize._random_sample_ratio``."""
    return int(scale[0] * ratio), int(scale[1] * ratio)


class RandomRescale(A.DualTransform):
    """Fit the image into ``scale x ratio`` keeping its aspect, ratio uniform in ``ratio_range``.

    ``scale`` is ``[long, short]`` (mmsegmentation writes ``(2048, 512)``: any
    image is rescaled so its long edge is <= 2048 r and its short edge <= 512 r).
    """

    def __init__(self, scale, ratio_range=(0.5, 2.0), p: float = 1.0):
        super().__init__(p=p)
        self.scale, self.ratio_range = tuple(scale), tuple(ratio_range)

    def get_params(self):
        lo, hi = self.ratio_range
        return {"ratio": float(self.random_generator.random()) * (hi - lo) + lo}

    def _size(self, shape, ratio):
        return keep_ratio_size(*shape[:2], ratio_scale(self.scale, ratio))

    def apply(self, img, ratio=1.0, **params):
        h, w = self._size(img.shape, ratio)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask, ratio=1.0, **params):
        h, w = self._size(mask.shape, ratio)
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)

    def get_transform_init_args_names(self):
        return ("scale", "ratio_range")


# -- RandomCrop(crop, cat_max_ratio) ----------------------------------------------------------------------------------
def crop_margins(shape, crop) -> tuple:
    """How far a crop's top-left corner can move: 0 where the image is smaller than the crop."""
    return max(shape[0] - crop[0], 0), max(shape[1] - crop[1], 0)


def choose_crop(mask: np.ndarray, crop, cat_max_ratio: float, ignore_index: int, draw) -> tuple:
    """The crop's top-left ``(y, x)``; ``draw()`` gives one random corner.

    With ``cat_max_ratio < 1``, mmsegmentation's rule: a corner is kept when the
    crop holds more than one labelled class and none fills ``cat_max_ratio`` or
    more of its labelled pixels; else another is drawn, checking at most 10 and
    taking the 11th unchecked.
    """
    corner = draw()
    if cat_max_ratio >= 1.0:
        return corner
    for _ in range(10):
        y, x = corner
        counts = np.bincount(mask[y:y + crop[0], x:x + crop[1]].ravel(), minlength=256)
        if 0 <= ignore_index < counts.size:
            counts[ignore_index] = 0
        counts = counts[counts > 0]
        if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
            break
        corner = draw()
    return corner


class CatMaxRatioCrop(A.DualTransform):
    """A random ``crop`` (clipped to the image when it is smaller), re-drawn while one class dominates it."""

    def __init__(self, crop, cat_max_ratio: float = 0.75, ignore_index: int = 255, p: float = 1.0):
        super().__init__(p=p)
        self.crop, self.cat_max_ratio, self.ignore_index = tuple(crop), float(cat_max_ratio), ignore_index

    def get_params_dependent_on_data(self, params, data):
        mask = data["mask"]
        margin_h, margin_w = crop_margins(mask.shape, self.crop)

        def draw():
            g = self.random_generator
            return int(g.integers(0, margin_h + 1)), int(g.integers(0, margin_w + 1))
        return {"corner": choose_crop(mask, self.crop, self.cat_max_ratio, self.ignore_index, draw)}

    def apply(self, img, corner=(0, 0), **params):
        y, x = corner
        return img[y:y + self.crop[0], x:x + self.crop[1]]

    def apply_to_mask(self, mask, corner=(0, 0), **params):
        return self.apply(mask, corner)

    def get_transform_init_args_names(self):
        return ("crop", "cat_max_ratio", "ignore_index")


# -- PhotoMetricDistortion --------------------------------------------------------------------------------------------
BRIGHTNESS_DELTA, CONTRAST_RANGE, SATURATION_RANGE, HUE_DELTA = 32, (0.5, 1.5), (0.5, 1.5), 18


def _convert(img: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``img * alpha + beta`` in float32, clipped to 0..255 and truncated to uint8."""
    return np.clip(img.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(img: np.ndarray, brightness=None, contrast=None, contrast_first=False, saturation=None,
                           hue=None) -> np.ndarray:
    """mmsegmentation's ``PhotoMetricDistortion`` for drawn values (``None``: that step not applied).

    Order: brightness, contrast if ``contrast_first``, saturation, hue, contrast
    otherwise. Saturation and hue act in OpenCV's 8-bit HSV (hue 0..179); the
    image is RGB here, BGR there, and OpenCV gives both the same HSV.
    """
    if brightness is not None:
        img = _convert(img, beta=brightness)
    if contrast_first and contrast is not None:
        img = _convert(img, alpha=contrast)
    if saturation is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = _convert(hsv[:, :, 1], alpha=saturation)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if hue is not None:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + hue) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = _convert(img, alpha=contrast)
    return img


class PhotoMetricDistortion(A.ImageOnlyTransform):
    """Each of brightness (+-32), contrast (x 0.5-1.5), saturation (x 0.5-1.5) and hue (+-18 of 180; -18..17 drawn,
    as numpy's ``randint(-18, 18)``) applied with probability 1/2; contrast first or last, 1/2 each."""

    def __init__(self, p: float = 1.0):
        super().__init__(p=p)

    def get_params(self):
        g = self.random_generator

        def maybe(value):
            return value() if g.integers(0, 2) else None
        return {"brightness": maybe(lambda: float(g.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA))),
                "contrast_first": bool(g.integers(0, 2)),
                "contrast": maybe(lambda: float(g.uniform(*CONTRAST_RANGE))),
                "saturation": maybe(lambda: float(g.uniform(*SATURATION_RANGE))),
                "hue": maybe(lambda: int(g.integers(-HUE_DELTA, HUE_DELTA)))}

    def apply(self, img, **params):
        keys = ("brightness", "contrast", "contrast_first", "saturation", "hue")
        return photometric_distortion(img, **{k: params[k] for k in keys if k in params})

    def get_transform_init_args_names(self):
        return ()


# -- padding after normalisation --------------------------------------------------------------------------------------
def pad_bottom_right(image, mask, size, ignore_index: int):
    """Pad a normalised CxHxW tensor with 0 (the mean colour) and its HxW mask with ``ignore_index`` to ``size``,
    below and to the right: mmsegmentation's ``SegDataPreProcessor(pad_val=0, seg_pad_val=255, size=crop)``."""
    import torch.nn.functional as F

    dh, dw = max(size[0] - image.shape[-2], 0), max(size[1] - image.shape[-1], 0)
    if not dh and not dw:
        return image, mask
    return F.pad(image, (0, dw, 0, dh), value=0.0), F.pad(mask, (0, dw, 0, dh), value=ignore_index)
