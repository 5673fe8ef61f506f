"""Reading images and masks: any size, grayscale / RGBA / 16-bit converted to 8-bit RGB."""
import os

import cv2
import numpy as np

from ..errors import DataError, OutputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class UnreadableImage(DataError):
    """An image file that cannot be decoded."""


def read_image(path: str) -> np.ndarray:
    """HxWx3 uint8 RGB: grayscale and RGBA converted, EXIF rotation applied, 16-bit scaled to 8."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None:
        raise UnreadableImage(f"{path}: no such file")
    if data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8 and not _ends_like_jpeg(data):
        raise UnreadableImage(f"{path}: truncated JPEG (no end-of-image marker)")  # decoders fill the rest grey
    # IMREAD_COLOR gives 3 channels and honours EXIF orientation; ANYDEPTH keeps 16-bit data
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if img is None:
        raise UnreadableImage(f"{path}: not a readable image" + (" (empty file)" if not data.size else ""))
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def _ends_like_jpeg(data: np.ndarray) -> bool:
    tail = data[-64:].tobytes()  # the EOI marker, possibly followed by padding
    return b"\xff\xd9" in tail


def read_mask(path: str) -> np.ndarray:
    """HxW uint8 label mask, read without any colour conversion; a palette PNG gives its indices (VOC)."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is not None and data.size > 26 and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and data[25] == 3:
        return _palette_indices(path)  # IHDR colour type 3: OpenCV would expand the palette to colours
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if mask is None:
        raise UnreadableImage(f"{path}: not a readable label image")
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask.astype(np.uint8)


def _palette_indices(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UnreadableImage(f"{path}: not a readable label image ({err})") from None


def write_png(path: str, array: np.ndarray, rgb: bool = True):
    """Write a uint8 (or uint16) mask (HxW) or uint8 RGB image (HxWx3) as PNG."""
    if array.ndim == 3 and rgb:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, array):
        raise OutputError(f"{path}: could not write image")
