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


class Preset:
    """Callable ``(image HxWx3 uint8, mask HxW uint8) -> (3xHxW float tensor, HxW int64 tensor)``."""

    def __init__(self, transforms):
        self.pipeline = A.Compose(transforms)

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        out = self.pipeline(image=image, mask=mask)
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


def eval_preset(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Preset:
    return Preset([A.Normalize(mean=mean, std=std)])


def normalize_image(image: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 HxWx3 RGB -> normalised 3xHxW float tensor (inference on images without masks)."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
