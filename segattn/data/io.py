"""Reading images and masks (any size, grayscale / RGBA / 16-bit converted to 8-bit RGB), and writing outputs
without following a link planted where they go."""
import os
import re
import struct
import tempfile
from contextlib import contextmanager

import cv2
import numpy as np

from ..errors import DataError, OutputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class UnreadableImage(DataError):
    """An image file that cannot be decoded."""


# images (and labels) above this many pixels are refused before decoding: a 1 MB PNG can claim 30000 x 30000 and
# take gigabytes to decode. data.max_pixels sets it (build_dataset, the tools); 2^28 is 16384 x 16384.
MAX_PIXELS = 2 ** 28


def set_max_pixels(limit: int):
    global MAX_PIXELS
    MAX_PIXELS = int(limit)


def _pil_header_size(path: str):
    """``(w, h)`` from the header, by the PIL plugin that recognises the file (what ``Image.open`` does, without
    its decompression-bomb check, and without touching PIL's global limit); None where no plugin does."""
    from PIL import Image

    Image.init()
    with open(path, "rb") as fp:
        prefix = fp.read(16)
        for name in Image.ID:
            factory, accept = Image.OPEN[name]
            if accept is not None and not accept(prefix):
                continue
            fp.seek(0)
            try:
                with factory(fp, path) as image:
                    return image.size
            except Exception:  # noqa: BLE001 - not this plugin's format (each raises its own kind)
                continue
    return None


def _tiff_header_size(f, head: bytes):
    """``(w, h)`` from a TIFF's first directory (ImageWidth, ImageLength): float and other sample formats PIL
    cannot open still have a header that says their size."""
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or struct.unpack(order + "H", head[2:4])[0] != 42:
        return None
    f.seek(struct.unpack(order + "I", head[4:8])[0])
    count = struct.unpack(order + "H", f.read(2))[0]
    size = {}
    for _ in range(min(count, 4096)):
        tag, kind, _, value = struct.unpack(order + "HHI4s", f.read(12))
        if tag in (256, 257):
            size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def _opencv_only_header_size(path: str):
    """``(w, h)`` of what OpenCV decodes and PIL does not read: Radiance HDR, PFM, float TIFF."""
    with open(path, "rb") as f:
        head = f.read(4096)
        try:
            tiff = _tiff_header_size(f, head)
        except struct.error:  # a directory cut short
            tiff = None
    if tiff:
        return tiff
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        match = re.search(rb"\n\n([-+])Y (\d+) ([-+])X (\d+)", head)
        if match:
            return int(match.group(4)), int(match.group(2))
    if head[:2] in (b"PF", b"Pf"):
        match = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)\s", head)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def check_pixel_count(path: str):
    """UnreadableImage where the header claims more than ``MAX_PIXELS`` pixels, or where no header reader knows
    the format: every decoder's size is checked before it allocates (PIL's global guard left as it is)."""
    size = _pil_header_size(path) or _opencv_only_header_size(path)
    if size is None:
        raise UnreadableImage(f"{path}: not a readable image (no header of a format whose size can be checked "
                              "before decoding: PNG, JPEG, BMP, TIFF, WebP, PPM, HDR, PFM, ...)")
    w, h = size
    if w * h > MAX_PIXELS:
        mega = f"{w * h / 1e6:.0f} megapixels" if w * h >= 1e6 else f"{w * h} pixels"
        raise UnreadableImage(f"{path}: {w}x{h} is {mega}, above data.max_pixels={MAX_PIXELS} "
                              "(refused before decoding); raise data.max_pixels to read it")


def read_image(path: str) -> np.ndarray:
    """HxWx3 uint8 RGB: grayscale and RGBA converted, EXIF rotation applied, 16-bit scaled to 8."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None:
        raise UnreadableImage(f"{path}: no such file")
    if data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8 and not _ends_like_jpeg(data):
        raise UnreadableImage(f"{path}: truncated JPEG (no end-of-image marker)")  # decoders fill the rest grey
    check_pixel_count(path)
    # IMREAD_COLOR gives 3 channels and honours EXIF orientation; ANYDEPTH keeps 16-bit data
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if img is None:
        raise UnreadableImage(f"{path}: not a readable image" + (" (empty file)" if not data.size else ""))
    return np.ascontiguousarray(cv2.cvtColor(to_uint8(img, path), cv2.COLOR_BGR2RGB))


def to_uint8(img: np.ndarray, what: str) -> np.ndarray:
    """Any decoded depth as 8 bits, the one rule for every reader: 16-bit scaled by 1/257, other depths min-max
    scaled (a float image must be finite: one infinite pixel would make it all black)."""
    if img.dtype == np.uint16 or (img.dtype.kind in "iu" and img.dtype != np.uint8 and img.size
                                  and 0 <= int(img.min()) and int(img.max()) <= 65535):
        return (img / 257.0).round().astype(np.uint8)
    if img.dtype != np.uint8:
        bad = int(np.count_nonzero(~np.isfinite(img))) if img.dtype.kind == "f" else 0
        if bad:
            raise UnreadableImage(f"{what}: {bad} pixel values are NaN or infinite; a float image needs finite "
                                  "values (fix or re-export it)")
        return cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return img


def pil_to_rgb(image, what: str = "image") -> np.ndarray:
    """A PIL image as :func:`read_image` reads the file it came from: EXIF rotation applied, any depth as 8 bits
    by :func:`to_uint8` (PIL's own convert("RGB") clips 16-bit values), grey and alpha to RGB."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = to_uint8(np.asarray(image), what)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.asarray(image.convert("RGB"))


def _ends_like_jpeg(data: np.ndarray) -> bool:
    tail = data[-64:].tobytes()  # the EOI marker, possibly followed by padding
    return b"\xff\xd9" in tail


def read_mask(path: str) -> np.ndarray:
    """HxW uint8 label mask, read without any colour conversion; a palette PNG gives its indices (VOC)."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is not None and data.size:
        check_pixel_count(path)
    if data is not None and data.size > 26 and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and data[25] == 3:
        return _palette_indices(path)  # IHDR colour type 3: OpenCV would expand the palette to colours
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if mask is None:
        raise UnreadableImage(f"{path}: not a readable label image")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype != np.uint8 and mask.size and int(mask.max()) > 255:  # a 16-bit PNG: uint8 would wrap 263 to 7
        raise UnreadableImage(f"{path}: label values reach {int(mask.max())}, beyond the 0..255 a label holds (a "
                              f"{mask.dtype.itemsize * 8}-bit image); write the dataset's 8-bit label ids")
    return mask.astype(np.uint8)


def label_is_colour(path: str) -> bool:
    """Whether a label file holds colours (three or four channels that differ somewhere) rather than ids: a
    colour-coded mask, which :func:`read_mask` would read as its first channel."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None or not data.size or (data.size > 26 and data[:8].tobytes() == b"\x89PNG\r\n\x1a\n"
                                         and data[25] in (0, 3, 4)):  # grey, palette, grey + alpha: ids
        return False
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] < 3:
        return False
    return bool((image[..., 0] != image[..., 1]).any() or (image[..., 1] != image[..., 2]).any())


def _palette_indices(path: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UnreadableImage(f"{path}: not a readable label image ({err})") from None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def output_file(path: str):
    """A temporary name beside ``path`` to write to; when the block succeeds it takes ``path``'s place.

    ``os.replace`` replaces a symbolic link planted at ``path`` instead of writing through it, so no file
    outside the output folder is overwritten or created; a write that fails or is killed leaves no half-file
    under the final name. The file gets an ordinary new file's permissions (the umask), not mkstemp's 0600.
    Every file a tool writes goes through here.
    """
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_image(path: str, array: np.ndarray, rgb: bool = True):
    """Write a uint8 (or uint16) mask (HxW) or uint8 RGB image (HxWx3); the format from the name's extension."""
    if array.ndim == 3 and rgb:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    with output_file(path) as tmp:
        if not cv2.imwrite(tmp, array):
            raise OutputError(f"{path}: could not write image")


def write_png(path: str, array: np.ndarray, rgb: bool = True, text: dict = None):
    """Write a uint8 (or uint16) mask (HxW) or uint8 RGB image (HxWx3) as PNG; ``text``: tEXt chunks to carry
    (which tool wrote it: what that tool may later replace, :func:`png_text`)."""
    if not text:
        return write_image(path, array, rgb)
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    with output_file(path) as tmp:
        Image.fromarray(array if rgb or array.ndim == 2 else array[..., ::-1]).save(tmp, format="PNG", pnginfo=info)


def png_text(path: str) -> dict:
    """The text chunks ahead of a PNG's pixels (the header alone is read; empty for anything else, or a file that
    cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return {k: v for k, v in image.info.items() if isinstance(v, str)} if image.format == "PNG" else {}
    except (OSError, ValueError, Image.DecompressionBombError):  # a huge foreign PNG: not ours either
        return {}
