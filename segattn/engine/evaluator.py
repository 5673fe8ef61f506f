"""Evaluate a model on a labelled split: confusion matrix, per-class IoU, saved predictions."""
import os

import numpy as np
import torch
from tqdm import tqdm

from ..data.io import png_text, read_image
from ..data.palette import colorize
from ..errors import OutputError
from .compiled import EvalCompile
from .distributed import gather_lists, get_rank, get_world_size
from .inference import predict_from_config
from .loader import BadSampleCounter, ShardSampler, SkipBadSamples, loading, make_loader
from .metrics import ConfusionMatrix


# the errors panel: right white and wrong pink, far from every Cityscapes colour (a dark "correct" read as its
# building grey, a pure red as its rider); ignore black, as the prediction and ground-truth panels draw it
ERROR_COLOURS = (("correct", (255, 255, 255)), ("wrong", (255, 0, 128)), ("ignore", (0, 0, 0)))


def color_panel(pred: np.ndarray, mask: np.ndarray, palette, class_names, ignore_index: int = 255) -> np.ndarray:
    """Prediction | ground truth | errors (right white, wrong pink, ignore black), a legend of the classes and the
    three error colours below."""
    import cv2

    from ..data.palette import legend_strip

    (_, right), (_, wrong), (_, unlabelled) = ERROR_COLOURS
    errors = np.where((pred == mask)[..., None], np.uint8(right), np.uint8(wrong)).astype(np.uint8)
    errors[mask == ignore_index] = unlabelled
    gap = np.full((pred.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([colorize(pred, palette), gap, colorize(mask, palette), gap, errors], axis=1)
    present = sorted({int(c) for c in np.unique(np.concatenate([pred.ravel(), mask.ravel()])) if c != ignore_index})
    header = np.full((22, row.shape[1], 3), 255, np.uint8)
    for i, title in enumerate(("prediction", "ground truth", "errors")):
        cv2.putText(header, title, (8 + i * (pred.shape[1] + 4), 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([header, row, legend_strip(present, class_names, palette, row.shape[1], ERROR_COLOURS)])


def save_prediction(pred: np.ndarray, image_path: str, out_dir: str, palette, to_label_ids=None, color_dir=None,
                    mask=None, class_names=None, ignore_index=255):
    """``out_dir/<stem>.png``: label ids for Cityscapes (train ids otherwise), one file per image.

    That folder is what Cityscapes' own evaluator and test server take as it is:
    they search it recursively for one PNG per ground-truth image, so colour
    images go to ``color_dir`` (``<stem>_color.png``), never into ``out_dir``:
    with ``mask`` and ``class_names``, :func:`color_panel`'s prediction, ground
    truth and errors side by side with a legend, else the prediction's colours.
    """
    from ..data.io import write_png

    stem = os.path.splitext(os.path.basename(image_path))[0]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        write_png(os.path.join(out_dir, stem + ".png"), to_label_ids(pred) if to_label_ids else pred.astype(np.uint8),
                  text={"software": MARK})
    if color_dir:
        os.makedirs(color_dir, exist_ok=True)
        picture = (color_panel(pred, mask, palette, class_names, ignore_index) if mask is not None and class_names
                   else colorize(pred, palette))
        write_png(os.path.join(color_dir, stem + "_color.png"), picture, text={"software": MARK})


def eval_setting(cfg) -> tuple:
    """``(tag, settings)`` of an evaluation: a file-name part that tells one inference setting from another
    (``whole_s1``, ``slide769x769-513x513_s0.75-1-1.25_flip``, ``..._resize2048x512``) and the settings as a dict,
    for the results file to hold."""
    e, d = cfg.eval, cfg.data
    mode = e.mode + (f"{e.crop_size[0]}x{e.crop_size[1]}-{e.stride[0]}x{e.stride[1]}" if e.mode == "slide" else "")
    parts = [mode, "s" + "-".join(f"{s:g}" for s in e.scales)] + (["flip"] if e.flip else [])
    if d.test_resize:
        parts.append(f"resize{d.test_resize[0]}x{d.test_resize[1]}")
    settings = {"mode": e.mode, "scales": list(e.scales), "flip": bool(e.flip),
                "test_resize": list(d.test_resize) if d.test_resize else None}
    if e.mode == "slide":
        settings.update(crop_size=list(e.crop_size), stride=list(e.stride))
    return "_".join(parts), settings


MARK = "segattn tools/eval.py"  # the PNG text chunk every prediction eval writes carries: what it may replace


def _nested(a: str, b: str) -> bool:
    return os.path.commonpath([a, b]) in (a, b)


def claim_prediction_folders(dataset, save_dir=None, color_dir=None):
    """OutputError before anything is written where ``save_dir`` / ``color_dir`` would write into (or above) a
    folder of the split's images or labels, or over a file that this tool did not write there.

    ``<stem>.png`` is the mask's name in the folder layout (and the image's in Cityscapes'): pointed at the
    val masks, --save-pred would replace the ground truth. Each prediction carries :data:`MARK` in a PNG text
    chunk, so evaluating again into the same folder replaces those files and no other, and the folder holds
    the PNGs alone (what Cityscapes' evaluator and test server take as it is).
    """
    inputs = {os.path.dirname(os.path.realpath(p)) for pair in dataset.pairs for p in pair[:2] if p}
    stems = [os.path.splitext(os.path.basename(pair[0]))[0] for pair in dataset.pairs]
    for folder, flag, suffix in ((save_dir, "--save-pred", ".png"), (color_dir, "--save-color", "_color.png")):
        if not folder:
            continue
        real = os.path.realpath(folder)
        clash = next((d for d in sorted(inputs) if _nested(real, d)), None)
        if clash:
            raise OutputError(f"{flag} {folder}: {'is' if real == clash else 'holds or lies in'} {clash}, a folder "
                              "of the split's images or labels; predictions there could replace them or be read as "
                              "them: give a folder outside the dataset")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise OutputError(f"{flag} {folder}: a file, not a folder")
        foreign = [n for n in (stem + suffix for stem in stems) if os.path.lexists(os.path.join(folder, n))
                   and png_text(os.path.join(folder, n)).get("software") != MARK]
        if foreign:
            raise OutputError(f"{flag} {folder}: {foreign[0]} is there already" + (f" (and {len(foreign) - 1} more)"
                              if len(foreign) > 1 else "") + ", not written by tools/eval.py; give a new or empty "
                              "folder (nothing there is overwritten)")


@torch.no_grad()
def evaluate(model, dataset, cfg, device, progress=True, save_dir=None, max_images=None, vis_callback=None,
             color_dir=None, compile_mode: str = "off"):
    """Run ``dataset`` through ``model`` with the ``eval`` section's inference; return metrics.

    Under torch.distributed each rank takes every world-size-th image and the
    confusion matrices are summed, so the numbers equal a single-process run.
    ``metrics["skipped"]`` lists the samples that could not be read (and so are
    not in the numbers), ``metrics["images"]`` counts those that are. ``model``
    may be an exported model in a runtime (:mod:`segattn.deploy.runtimes`): it
    takes each image as decoded from its file and runs its own whole-image pass.
    ``compile_mode``: ``eval.compile`` (:mod:`segattn.engine.compiled`) where
    a tool evaluates a segmentor; the training loop's validation leaves it off.
    """
    runtime = hasattr(model, "predict_image")
    if runtime:  # only here: the training loop's validation does not import the inference tools' module
        from .predictor import predict_labels
    else:
        model.eval()
    num_classes = cfg.model.num_classes
    cm = ConfusionMatrix(num_classes, cfg.data.ignore_index)
    wrapped = SkipBadSamples(dataset, cfg.train.seed)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    sampler = ShardSampler(n, get_rank(), get_world_size())
    loader = make_loader(wrapped, 1, cfg.data.workers, sampler, drop_last=False, seed=cfg.train.seed)
    bad = BadSampleCounter(cfg.data.max_bad_samples)
    to_ids = type(dataset).to_label_ids  # what the dataset's own evaluator reads (Cityscapes: label ids)
    pacer = EvalCompile(model, "off" if runtime else compile_mode, len(sampler))
    with loading(loader) as batches:  # its workers end with the loop, a raise included
        for i, batch in enumerate(tqdm(batches, total=len(loader), desc="eval", leave=False,
                                       disable=not progress or get_rank() != 0)):
            bad.report(batch)
            images, masks, paths = batch.images, batch.masks, batch.paths
            if images is None:
                continue
            if runtime:  # the export's own pass on the file's pixels, at the label's size
                labels = predict_labels(model, cfg, read_image(paths[0]), device, masks.shape[-2:])
                pred = torch.from_numpy(labels)[None]
            else:
                x, size = images.to(device), masks.shape[-2:]  # at the label's size
                pred = pacer.run(lambda m: predict_from_config(m, x, cfg.eval, size)).argmax(1).cpu()
            cm.update(masks, pred)
            if save_dir or color_dir:
                save_prediction(pred[0].numpy().astype(np.uint8), paths[0], save_dir, dataset.palette, to_ids,
                                color_dir, masks[0].numpy().astype(np.uint8), dataset.class_names,
                                cfg.data.ignore_index)
            if vis_callback is not None and get_rank() == 0:
                vis_callback(i, images[0], masks[0], pred[0])
    cm.reduce_from_all_processes()
    metrics = cm.compute()
    metrics["confusion"] = cm.mat.tolist()  # [ground truth][prediction] pixel counts, ignore excluded
    metrics["skipped"] = gather_lists(bad.messages)  # every rank's: files not in these numbers
    metrics["images"] = n - len(metrics["skipped"])
    return metrics
