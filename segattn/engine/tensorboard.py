"""TensorBoard for rank 0: the writer, its stand-in on other ranks, and val images with predictions."""
import numpy as np
import torch


class Visualiser:
    """Logs the first ``n`` val images with ground truth and prediction to TensorBoard."""

    def __init__(self, writer, step, palette, n):
        self.writer, self.step, self.palette, self.n = writer, step, palette, n

    def __call__(self, index, image, mask, pred):
        if index >= self.n:
            return
        from ..data.palette import colorize
        from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD

        img = image.cpu() * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
        img = (img.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        if img.shape[:2] != tuple(mask.shape):  # data.test_resize rescaled the image, not the label
            import cv2

            img = cv2.resize(img, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        panel = np.concatenate([img, colorize(mask.numpy().astype(np.uint8), self.palette),
                                colorize(pred.numpy().astype(np.uint8), self.palette)], axis=1)
        self.writer.add_image(f"val/{index}", panel, self.step, dataformats="HWC")


class NullWriter:
    """TensorBoard stand-in for ranks other than 0."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
