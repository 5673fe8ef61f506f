"""Load a trained model for inference, and run it over a folder of images."""
import os
from collections import Counter

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from ..configure import config_changes, describe_changes, with_defaults
from ..data.io import IMAGE_EXTENSIONS, UnreadableImage, read_image, write_image, write_png
from ..data.palette import colorize, legend_strip
from ..data.transforms import normalize_image, resize_keep_ratio
from ..errors import CheckpointError, MissingFileError, OutputError, first_line
from ..models import build_model
from . import shards
from .checkpoint import load_checkpoint, load_model_weights
from .compiled import CompileFailed, EvalCompile
from .device import memory_format, resolve_device
from .inference import predict_from_config


def load_model(cfg, checkpoint: str, device, ckpt: dict = None):
    """Build the config's model (no pretrained download), load the checkpoint's weights, and put it in
    ``eval.channels_last``'s memory format (the tools feed NCHW images; the first convolution's output
    follows the weights). ``ckpt``: the file's contents where already read (``checkpoint`` names it)."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["encoder"]["weights"] = None  # the checkpoint holds every weight
    model = build_model(model_cfg)
    ckpt = ckpt if ckpt is not None else load_checkpoint(checkpoint)
    try:
        load_model_weights(model, ckpt["model"], checkpoint)
    except CheckpointError as err:
        if not ckpt.get("config"):
            raise
        saved = with_defaults(ckpt["config"]).get("model", {})
        changes = config_changes(saved, OmegaConf.to_container(cfg.model, resolve=True), "model.")
        changes.pop("model.encoder.weights", None)  # where ImageNet weights came from: not the model's shape
        if not changes:
            raise
        raise CheckpointError(f"{err}; the config differs from the one the checkpoint was trained with in "
                              f"{describe_changes(changes)} (leave CONFIG out to use the checkpoint's own)") from None
    model.to(device, memory_format=memory_format(cfg.eval.channels_last))
    return model.eval(), ckpt


OUTPUT_SUFFIXES = ("_pred.png", "_color.png", "_overlay.jpg")


def list_images(folder: str, recursive: bool = False, exclude: str = None):
    """The images of ``folder`` (and its sub-folders with ``recursive``), never those under ``exclude``."""
    if not os.path.isdir(folder):
        raise MissingFileError(f"--input: {folder!r} is not a folder")
    found = []
    skip = os.path.realpath(exclude) if exclude else None
    for dirpath, dirnames, files in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) != skip)
        found += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return found


def safe_output_path(output_dir: str, relative: str) -> str:
    """``output_dir/relative``, refusing anything that resolves outside ``output_dir``."""
    root = os.path.realpath(output_dir)
    path = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, path]) != root:
        raise OutputError(f"refusing to write {path!r} outside --output {root!r}")
    return path


def plan_outputs(images, input_dir: str, output_dir: str) -> dict:
    """``{image: output base}``: ``<stem>`` under ``output_dir`` (the input's sub-folders kept), ``<stem>_<ext>``
    where two images share a stem (``a.png``, ``a.jpg``); OutputError where an output would replace an input."""
    if os.path.realpath(output_dir) == os.path.realpath(input_dir):
        raise OutputError(f"--output {output_dir!r} is the --input folder: the predictions would mix with the images "
                          "(and a later run would read them as images); give another --output folder")
    stems = {p: os.path.splitext(os.path.relpath(p, input_dir))[0] for p in images}
    shared = Counter(stems.values())
    bases = {p: safe_output_path(output_dir, stem if shared[stem] == 1 else f"{stem}_{os.path.splitext(p)[1][1:]}")
             for p, stem in stems.items()}
    inputs = {os.path.realpath(p) for p in images}
    for base in bases.values():
        for suffix in OUTPUT_SUFFIXES:
            if os.path.realpath(base + suffix) in inputs:
                raise OutputError(f"{base + suffix}: an input image would be overwritten by a prediction; give an "
                                  "--output folder that holds no input images")
    return bases


def overlay(image: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (image.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha).round().astype(np.uint8)


def eval_settings(eval_cfg, image: np.ndarray):
    """The config's inference, switched to sliding windows for images far larger than a window.

    A whole-image pass over a huge image would hold every activation of it at
    once; windows of ``eval.crop_size`` bound the memory whatever the size.
    """
    h, w = image.shape[:2]
    ch, cw = eval_cfg.crop_size
    if eval_cfg.mode == "whole" and h * w * min(eval_cfg.scales) ** 2 > 4 * ch * cw:
        eval_cfg = OmegaConf.merge(eval_cfg, {"mode": "slide"})
    return eval_cfg


@torch.no_grad()
def infer_folder(model, cfg, input_dir, output_dir, palette, device, recursive=False, progress=True,
                 class_names=None, source: str = None, compile_mode: str = "off"):
    """Predict every image of this process's share (:mod:`segattn.engine.shards`: all of them outside torchrun);
    returns ``(succeeded, [(path, reason)], skipped)``.

    ``model`` is a segmentor (the config's eval settings apply) or an exported
    model in a runtime (:mod:`segattn.deploy.runtimes`: its own whole-image pass).
    An image whose outputs an earlier run made with the same weights and
    settings is skipped (their stamp); ``source`` names the weights in the
    manifest. ``compile_mode``: ``eval.compile`` for a segmentor
    (:mod:`segattn.engine.compiled`); a compiler's failure with ``on`` stops
    the run (it would fail every image).

    A failure on one image (unreadable, truncated, an error inside the model)
    is reported with the file's name and the run goes on to the next image.
    """
    images = list_images(input_dir, recursive, exclude=output_dir)  # an --output inside --input is not re-read
    if not images:
        raise MissingFileError(f"--input: no images ({', '.join(IMAGE_EXTENSIONS)}) in {input_dir!r}")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputError(f"--output {output_dir}: a file, not a folder; give a folder for the predictions")
    bases = plan_outputs(images, input_dir, output_dir)  # over the whole folder: every process names alike
    rank, world = shards.process_share()
    os.makedirs(output_dir, exist_ok=True)
    current = shards.stamp(model, cfg)
    if rank == 0:
        shards.write_manifest(output_dir, current, source, len(images), world)
    mine = shards.share(images, rank, world)
    todo = [p for p in mine if not shards.already_done(bases[p], current, OUTPUT_SUFFIXES)]
    skipped = len(mine) - len(todo)
    done, failed = 0, []
    pacer = EvalCompile(model, "off" if hasattr(model, "predict_image") else compile_mode, len(todo))
    desc = "infer" if world == 1 else f"infer (process {rank + 1} of {world})"
    for path in tqdm(todo, desc=desc, unit="img", disable=not progress or rank != 0):
        try:
            shards.remove_leftovers(bases[path], OUTPUT_SUFFIXES)
            pacer.run(lambda m: infer_one(m, cfg, path, input_dir, output_dir, palette, device, bases[path],
                                          class_names, {shards.STAMP_KEY: current}))
        except UnreadableImage as err:
            failed.append((path, str(err)))
        except CompileFailed:  # eval.compile=on and the compiler failed: every image would
            raise
        except Exception as err:  # noqa: BLE001 - one image's failure must not stop the others
            first = first_line(err)
            failed.append((path, f"{path}: {type(err).__name__}: {first}"))
        else:
            done += 1
            continue
        tqdm.write(f"skipped {failed[-1][1]}")
    return done, failed, skipped


@torch.no_grad()
def predict_labels(model, cfg, image: np.ndarray, device, out_size=None) -> np.ndarray:
    """``(H, W)`` uint8 train ids for one HxWx3 uint8 RGB image, at its size, as the config evaluates.

    ``model`` is a segmentor (``data.test_resize``, then ``eval``'s scales, flip and
    windows, with sliding windows for images far larger than a window) or an
    exported model in a runtime (its own whole-image pass). ``out_size`` (h, w):
    the probabilities are resized there instead of to the image (a picture of a
    huge image, without its full-size probabilities).
    """
    if hasattr(model, "predict_image") and (out_size is None or tuple(out_size) == tuple(image.shape[:2])):
        return model.predict_labels(image)  # an exported model in ONNX Runtime / OpenVINO: the graph's argmax
    return class_probabilities(model, cfg, image, device, out_size).argmax(0).numpy().astype(np.uint8)


@torch.no_grad()
def class_probabilities(model, cfg, image: np.ndarray, device, out_size=None) -> torch.Tensor:
    """``(K, H, W)`` float32 on the CPU: the class probabilities :func:`predict_labels` takes the argmax of
    (a segmentor's softmax averaged over ``eval``'s passes; a runtime's softmax of its logits, resized to
    ``out_size`` where that differs from the image's)."""
    if hasattr(model, "predict_image"):
        logits = torch.from_numpy(np.ascontiguousarray(model.predict_image(image), np.float32))
        if out_size is not None and tuple(out_size) != tuple(logits.shape[-2:]):
            logits = torch.nn.functional.interpolate(logits[None], size=tuple(out_size), mode="bilinear",
                                                     align_corners=False)[0]
        return logits.softmax(0)
    resized = resize_keep_ratio(image, cfg.data.test_resize) if cfg.data.test_resize else image
    probs = predict_from_config(model, normalize_image(resized)[None].to(device), eval_settings(cfg.eval, resized),
                                tuple(out_size or image.shape[:2]))
    return probs[0].float().cpu()


def infer_one(model, cfg, path, input_dir, output_dir, palette, device, base=None, class_names=None, text=None):
    """``<base>_pred.png`` (train ids), ``<base>_color.png`` and ``<base>_overlay.jpg`` for one image (``base``:
    :func:`plan_outputs`' name, else ``<stem>`` under ``output_dir``). ``_pred.png`` is written last, with
    ``text`` (the run's stamp): where it exists, so do the others."""
    image = read_image(path)
    base = base or safe_output_path(output_dir, os.path.splitext(os.path.relpath(path, input_dir))[0])
    os.makedirs(os.path.dirname(base), exist_ok=True)
    pred = predict_labels(model, cfg, image, device)
    color = colorize(pred, palette)
    write_png(base + "_color.png", color)  # the palette's colours alone: a label picture other tools read
    picture = overlay(image, color)
    if class_names and picture.shape[1] >= 64:  # for a person: which colour is which class (if there is room)
        present = [int(c) for c in np.unique(pred)]
        picture = np.concatenate([picture, legend_strip(present, class_names, palette, picture.shape[1])])
    write_image(base + "_overlay.jpg", picture)
    write_png(base + "_pred.png", pred, text=text)


__all__ = ["infer_folder", "load_model", "predict_labels", "resolve_device", "safe_output_path"]
