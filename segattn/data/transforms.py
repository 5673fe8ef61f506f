"""Augmentation presets (albumentations), one place for train and eval.

Train (the CCNet / DANet recipe): random scale in ``scale_range``, pad to the
crop (image 0, mask ``ignore_index``), random crop, horizontal flip, optional
photometric jitter, ImageNet normalisation. Masks are only ever resampled
with nearest neighbour (albumentations does that for ``mask``).
"""
import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the same on 0..255 pixels, written as mmsegmentation writes them: evaluation normalises exactly as its
# data preprocessor does ((x - mean) / std in float32), so converted models see bit-identical inputs
MEAN_255 = (123.675, 116.28, 103.53)
STD_255 = (58.395, 57.12, 57.375)


def keep_ratio_size(h: int, w: int, scale) -> tuple:
    """mmcv's ``rescale_size``: the largest (h, w) of the same ratio with long edge <= max(scale), short <= min."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


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
    :func:`normalize_image` makes the tensor.
    """

    def __init__(self, transforms, resize=None, normalize=False):
        self.pipeline = A.Compose(transforms, is_check_shapes=resize is None)
        self.resize, self.normalize = resize, normalize

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        if self.resize:
            image = resize_keep_ratio(image, self.resize)
        out = self.pipeline(image=image, mask=mask)
        if self.normalize:
            return normalize_image(out["image"]), torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        return image, torch.from_numpy(np.ascontiguousarray(out["mask"])).long()


def train_preset(crop_size, scale_range=(0.5, 2.0), ignore_index=255, flip=True, photometric=False,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Preset:
    ch, cw = crop_size
    lo, hi = scale_range
    t = [A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                       mask_interpolation=cv2.INTER_NEAREST, p=1.0),
         A.PadIfNeeded(min_height=ch, min_width=cw, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=ignore_index,
                       position="top_left"),
         A.RandomCrop(height=ch, width=cw)]
    if flip:
        t.append(A.HorizontalFlip(p=0.5))
    if photometric:
        t.append(A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02, p=0.8))
    t.append(A.Normalize(mean=mean, std=std))
    return Preset(t)


def eval_preset(resize=None) -> Preset:
    return Preset([], resize, normalize=True)


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB -> ``(x - MEAN_255) / STD_255``, a 3xHxW float32 tensor (evaluation and inference)."""
    x = (image.astype(np.float32) - np.array(MEAN_255, np.float32)) / np.array(STD_255, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
