"""``Segmenter``: a trained model and its config, to segment images from Python without writing a file.

    from segattn import Segmenter

    segmenter = Segmenter.from_checkpoint("checkpoints/demo_ccnet/best.pth")   # the config it was trained with
    labels = segmenter.predict("image.png")            # (H, W) uint8 train ids at the image's size
    labels, logits = segmenter.predict(image_array, return_logits=True)
    picture = segmenter.overlay(image_array, labels)   # what tools/infer.py writes as _overlay.jpg
    segmenter.save_pretrained("ccnet-demo/")           # config.yaml, model.safetensors, README.md
    segmenter = Segmenter.from_pretrained("ccnet-demo/")   # or a Hugging Face Hub repo id

Predictions are :func:`segattn.engine.predictor.predict_labels`'s: the config's
test resize, scales, flip and windows (sliding windows for an image far larger
than a window), as ``tools/eval.py`` and ``tools/infer.py`` evaluate.
"""
import os

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import apply_overrides, config_from_dict
from ..configure import check_tool_config, checkpoint_config, load_tool_config, refuse_saved_imports
from ..data import dataset_class_names, dataset_palette
from ..data.io import pil_to_rgb, read_image
from ..data.palette import colorize
from ..errors import DataError
from ..registry import parse_spec
from .checkpoint import load_checkpoint
from .predictor import class_probabilities, infer_folder, load_model, overlay, predict_labels
from .device import resolve_device


def as_rgb(image, what: str = "image") -> np.ndarray:
    """A path, a PIL image or a numpy array -> HxWx3 uint8 RGB (a path read as every tool reads images)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image))
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL.Image: read as its file would be
        return pil_to_rgb(image, what)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise DataError(f"{what}: a numpy image must be uint8 (0..255), got {image.dtype}")
        if image.ndim in (2, 3) and min(image.shape[:2]) < 1:
            raise DataError(f"{what}: an empty image ({image.shape[0]}x{image.shape[1]} pixels)")
        if image.ndim == 2:
            return np.repeat(image[..., None], 3, axis=2)
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return np.ascontiguousarray(image[..., :3])
        raise DataError(f"{what}: a numpy image must be HxWx3 RGB (or HxW grey), got shape {image.shape}")
    raise DataError(f"{what}: expected a path, a PIL image or an HxWx3 uint8 numpy array, got {type(image).__name__}")


class Segmenter:
    """A model in eval mode, its config, the dataset's class names and palette, and where it came from."""

    def __init__(self, model, cfg: DictConfig, device="cpu", info: dict = None):
        self.model, self.cfg, self.device = model, cfg, device
        self.info = dict(info or {})
        self.class_names = list(dataset_class_names(cfg.data))
        self.palette = [tuple(c) for c in dataset_palette(cfg.data)]

    def __repr__(self) -> str:
        kind = parse_spec(self.cfg.model.head, "model.head")[0]
        names = ", ".join(self.class_names[:4]) + (", ..." if len(self.class_names) > 4 else "")
        origin = self.info.get("folder") or (f"iteration {self.info['iteration']}" if "iteration" in self.info
                                             else None)
        return (f"Segmenter({kind} head on {self.cfg.model.encoder.name}, {len(self.class_names)} classes ({names}), "
                f"device {self.device}" + (f", {origin}" if origin else "") + ")")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str, config=None, device: str = "auto", overrides=None):
        """A checkpoint of ``tools/train.py`` or ``tools/convert_checkpoint.py``.

        ``config``: a YAML path, a config dict, or None for the config the
        checkpoint was written with; ``overrides``: ``key=value`` strings on top.
        """
        ckpt = load_checkpoint(os.fspath(path))
        cfg = resolve_config(config, ckpt, os.fspath(path), overrides)
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        model, _ = load_model(cfg, os.fspath(path), device, ckpt=ckpt)
        info = {k: ckpt.get(k) for k in ("iteration", "metrics", "source") if ckpt.get(k) is not None}
        return cls(model, cfg, device, info)

    @classmethod
    def from_pretrained(cls, name: str, device: str = "auto", overrides=None):
        """A folder written by :meth:`save_pretrained` or ``tools/publish.py``, or a Hugging Face Hub repo id."""
        from .pretrained import read_folder

        state, saved, weights = read_folder(os.fspath(name))
        folder = os.path.dirname(weights)
        source = os.path.join(folder, "config.yaml")
        refuse_saved_imports(saved, overrides, source)
        cfg = check_tool_config(apply_overrides(config_from_dict(saved, source), overrides, source), source)
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        model, _ = load_model(cfg, weights, device, ckpt={"model": state})
        return cls(model, cfg, device, {"folder": folder})

    # -- prediction ----------------------------------------------------------------------------
    def predict(self, images, return_logits: bool = False):
        """Train ids ``(H, W)`` uint8 per image, at its size; a list in, a list out.

        ``images``: a path, a PIL image, an HxWx3 uint8 RGB numpy array, or a list
        of them. ``return_logits``: ``(labels, logits)`` per image, ``logits`` the
        ``(K, H, W)`` float32 log class probabilities whose argmax is ``labels``
        (with one pass, the model's logits less their log-sum-exp).
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        out = []
        for i, item in enumerate(items):
            image = as_rgb(item, f"predict: image {i}" if not single else "predict: image")
            if return_logits:
                probs = class_probabilities(self.model, self.cfg, image, self.device)
                out.append((probs.argmax(0).numpy().astype(np.uint8), probs.clamp_min(1e-30).log().numpy()))
            else:
                out.append(predict_labels(self.model, self.cfg, image, self.device))
        return out[0] if single else out

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """``(H, W)`` train ids -> ``(H, W, 3)`` uint8 RGB in the dataset's palette (ignore black)."""
        return colorize(np.asarray(labels, np.uint8), self.palette)

    def overlay(self, image, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The image with its prediction drawn over it (``alpha``: the colours' weight)."""
        return overlay(as_rgb(image), self.colorize(labels), alpha)

    def predict_folder(self, input_dir: str, output_dir: str, recursive: bool = False, progress: bool = True):
        """What ``tools/infer.py`` does: ``<stem>_pred.png``, ``_color.png``, ``_overlay.jpg`` (with a class legend)
        per image, this process's share under torchrun, skipping images done before with the same weights and
        settings; returns ``(segmented, [(path, reason)] failed, skipped)``."""
        return infer_folder(self.model, self.cfg, input_dir, output_dir, self.palette, self.device, recursive,
                            progress, self.class_names, self.info.get("weights_file"), self.cfg.eval.compile)

    # -- saving --------------------------------------------------------------------------------
    def save_pretrained(self, folder: str, hashed: bool = False, title: str = None) -> str:
        """Write ``config.yaml``, the weights (safetensors, nothing else) and a model card; returns the weights' path.

        ``hashed``: name the weights ``model-<sha256 prefix>.safetensors`` (``tools/publish.py``).
        """
        from .model_card import model_card
        from .pretrained import write_folder

        config = OmegaConf.to_container(self.cfg, resolve=True)
        config["data"]["palette"] = [list(c) for c in self.palette]  # the colours travel (a palette.txt stays)
        card = model_card(self.cfg, self.class_names, self.palette, self.info, title)
        return write_folder(os.fspath(folder), self.model.state_dict(), config, card, hashed)


def resolve_config(config, ckpt: dict, path: str, overrides=None) -> DictConfig:
    """The config for a checkpoint: a YAML file, a dict, or the one saved inside it."""
    if isinstance(config, (str, os.PathLike)):
        return load_tool_config(os.fspath(config), list(overrides or []))
    if config is not None:
        cfg = config if isinstance(config, DictConfig) else config_from_dict(dict(config), "config")
        return check_tool_config(apply_overrides(cfg, overrides, "config"), "config")
    return checkpoint_config(ckpt, path, overrides, "overrides",
                             "give its YAML: Segmenter.from_checkpoint(path, config='configs/....yaml')")


__all__ = ["Segmenter", "as_rgb"]
