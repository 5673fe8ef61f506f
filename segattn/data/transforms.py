"""Augmentation presets (albumentations), one place for train and eval.

Train, as the data config's options choose (docs/training.md lists them): a
random scale (of the image's own size in ``scale_range``, or mmsegmentation's
keep-ratio fit into ``train_scale`` x ratio), a random crop (re-drawn while
one class fills ``cat_max_ratio`` of it), horizontal flip, optional
photometric change (albumentations' ``ColorJitter``, or mmsegmentation's
``PhotoMetricDistortion``), ImageNet normalisation, and padding to the crop
(mask ``ignore_index``; image black before cropping, black after the
colour change, or 0 after normalisation: the mean colour). Masks are only ever resampled with nearest
neighbour.
"""
import albumentations as A
import cv2
import numpy as np
import torch

from ..config import PAD, PHOTOMETRIC, photometric_kind
from .augment import CatMaxRatioCrop, PhotoMetricDistortion, RandomRescale, keep_ratio_size, pad_bottom_right

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the same on 0..255 pixels, written as mmsegmentation writes them: evaluation normalises exactly as its
# data preprocessor does ((x - mean) / std in float32), so converted models see bit-identical inputs
MEAN_255 = (123.675, 116.28, 103.53)
STD_255 = (58.395, 57.12, 57.375)


def resize_keep_ratio(image: np.ndarray, scale) -> np.ndarray:
    """Bilinear (OpenCV, on the uint8 image, as mmcv's ``imresize``) to :func:`keep_ratio_size`."""
    h, w = keep_ratio_size(*image.shape[:2], scale)
    if (h, w) == image.shape[:2]:
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


class Preset:
    """Callable ``(image HxWx3 uint8, mask HxW uint8) -> (3xHxW float tensor, HxW int64 tensor)``.

    Evaluation (``normalize``, ``resize``): the image alone may first be
    rescaled to fit ``[long, short]`` (:func:`resize_keep_ratio`; the mask keeps
    its size, so predictions are scored at the label's resolution), then
    :func:`normalize_image` makes the tensor. ``pad_to``: after normalising,
    pad to that (H, W) below and right, image 0 and mask ``ignore_index``.
    """

    def __init__(self, transforms, resize=None, normalize=False, pad_to=None, ignore_index=255):
        self.pipeline = A.Compose(transforms, is_check_shapes=resize is None)
        self.resize, self.normalize = resize, normalize
        self.pad_to, self.ignore_index = pad_to, ignore_index

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        if self.resize:
            image = resize_keep_ratio(image, self.resize)
        out = self.pipeline(image=image, mask=mask)
        mask = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        if self.normalize:
            image = normalize_image(out["image"])
            if self.pad_to:
                image, mask = pad_bottom_right(image, mask, self.pad_to, self.ignore_index)
            return image, mask
        return torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1))), mask


def train_preset(crop_size, scale_range=(0.5, 2.0), ignore_index=255, flip=True, photometric="none",
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, train_scale=None, cat_max_ratio=1.0, pad="black") -> Preset:
    """The training augmentation the data config describes (its keys, documented in docs/training.md).

    ``train_scale=None, cat_max_ratio=1, pad="black"`` is the albumentations
    pipeline RandomScale, PadIfNeeded, RandomCrop, flip, jitter, Normalize;
    ``train_scale=[2049, 1025], cat_max_ratio=0.75, photometric="mmseg",
    pad="mean"`` is mmsegmentation's Cityscapes pipeline and data preprocessor
    (RandomResize, RandomCrop, RandomFlip, PhotoMetricDistortion, normalise, pad).
    """
    ch, cw = crop_size
    lo, hi = scale_range
    photometric = photometric_kind(photometric)
    if photometric not in PHOTOMETRIC or pad not in PAD:
        raise ValueError(f"photometric must be one of {PHOTOMETRIC} and pad one of {PAD}")
    if train_scale:
        t = [RandomRescale(train_scale, (lo, hi))]
    else:
        t = [A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                           mask_interpolation=cv2.INTER_NEAREST, p=1.0)]
    black = dict(min_height=ch, min_width=cw, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index,
                 position="top_left")  # below and to the right
    if pad == "black":
        t.append(A.PadIfNeeded(**black))
    if cat_max_ratio < 1.0 or pad != "black":
        t.append(CatMaxRatioCrop((ch, cw), cat_max_ratio, ignore_index))
    else:
        t.append(A.RandomCrop(height=ch, width=cw))
    if flip:
        t.append(A.HorizontalFlip(p=0.5))
    if photometric == "jitter":
        t.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02, p=0.8))
    elif photometric == "mmseg":
        t.append(PhotoMetricDistortion())
    if pad == "black_after":
        t.append(A.PadIfNeeded(**black))
    if pad != "black":  # normalised as mmsegmentation's data preprocessor ("mean": then padded with 0)
        return Preset(t, normalize=True, pad_to=(ch, cw) if pad == "mean" else None, ignore_index=ignore_index)
    t.append(A.Normalize(mean=mean, std=std))
    return Preset(t)


def eval_preset(resize=None) -> Preset:
    return Preset([], resize, normalize=True)


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB -> ``(x - MEAN_255) / STD_255``, a 3xHxW float32 tensor (evaluation and inference)."""
    x = (image.astype(np.float32) - np.array(MEAN_255, np.float32)) / np.array(STD_255, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
