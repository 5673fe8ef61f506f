"""Evaluate a model on a labelled split: confusion matrix, per-class IoU, saved predictions."""
import os

import numpy as np
import torch
from tqdm import tqdm

from ..data.palette import colorize
from .distributed import gather_lists, get_rank, get_world_size
from .inference import predict_from_config
from .loader import BadSampleCounter, ShardSampler, SkipBadSamples, make_loader
from .metrics import ConfusionMatrix


def save_prediction(pred: np.ndarray, image_path: str, out_dir: str, palette, to_label_ids=None, color_dir=None):
    """``out_dir/<stem>.png``: label ids for Cityscapes (train ids otherwise), one file per image.

    That folder is what Cityscapes' own evaluator and test server take as it is:
    they search it recursively for one PNG per ground-truth image, so colour
    images go to ``color_dir`` (``<stem>_color.png``), never into ``out_dir``.
    """
    from ..data.io import write_png

    stem = os.path.splitext(os.path.basename(image_path))[0]
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        write_png(os.path.join(out_dir, stem + ".png"), to_label_ids(pred) if to_label_ids else pred.astype(np.uint8))
    if color_dir:
        os.makedirs(color_dir, exist_ok=True)
        write_png(os.path.join(color_dir, stem + "_color.png"), colorize(pred, palette))


@torch.no_grad()
def evaluate(model, dataset, cfg, device, progress=True, save_dir=None, max_images=None, vis_callback=None,
             color_dir=None):
    """Run ``dataset`` through ``model`` with the ``eval`` section's inference; return metrics.

    Under torch.distributed each rank takes every world-size-th image and the
    confusion matrices are summed, so the numbers equal a single-process run.
    ``metrics["skipped"]`` lists the samples that could not be read (and so are
    not in the numbers), ``metrics["images"]`` counts those that are.
    """
    model.eval()
    num_classes = cfg.model.num_classes
    cm = ConfusionMatrix(num_classes, cfg.data.ignore_index)
    wrapped = SkipBadSamples(dataset, cfg.train.seed)
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    sampler = ShardSampler(n, get_rank(), get_world_size())
    loader = make_loader(wrapped, 1, cfg.data.workers, sampler, drop_last=False, seed=cfg.train.seed)
    bad = BadSampleCounter(cfg.data.max_bad_samples)
    to_ids = type(dataset).to_label_ids  # what the dataset's own evaluator reads (Cityscapes: label ids)
    for i, batch in enumerate(tqdm(loader, desc="eval", leave=False, disable=not progress or get_rank() != 0)):
        bad.report(batch)
        images, masks, paths = batch.images, batch.masks, batch.paths
        if images is None:
            continue
        probs = predict_from_config(model, images.to(device), cfg.eval, masks.shape[-2:])  # label size
        pred = probs.argmax(1).cpu()
        cm.update(masks, pred)
        if save_dir or color_dir:
            save_prediction(pred[0].numpy().astype(np.uint8), paths[0], save_dir, dataset.palette, to_ids, color_dir)
        if vis_callback is not None and get_rank() == 0:
            vis_callback(i, images[0], masks[0], pred[0])
    cm.reduce_from_all_processes()
    metrics = cm.compute()
    metrics["confusion"] = cm.mat.tolist()  # [ground truth][prediction] pixel counts, ignore excluded
    metrics["skipped"] = gather_lists(bad.messages)  # every rank's: files not in these numbers
    metrics["images"] = n - len(metrics["skipped"])
    return metrics
