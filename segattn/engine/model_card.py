"""The model card (``README.md``) of a pretrained folder: what the model is, its classes, where it came from.

Hugging Face Hub front matter (``library_name``, ``pipeline_tag``, ``license``,
``tags``) and then, for a person: architecture, classes and palette, training
data and recipe, validation metrics where the checkpoint recorded them, and the
source and licence of converted weights.
"""
import math

from ..data import dataset_class
from ..registry import parse_spec

LICENCES = {"mmseg": ("apache-2.0", "Apache-2.0, as mmsegmentation's model zoo releases them")}


def _architecture(model) -> str:
    kind, options = parse_spec(model.head, "model.head")
    options = ", ".join(f"{k} {v}" for k, v in options.items() if v is not None)
    aux = f"; auxiliary FCN head on layer3 (loss weight {model.aux.loss_weight})" if model.aux.enabled else ""
    return (f"`{kind}` head{f' ({options})' if options else ''} on `{model.encoder.name}`, output stride "
            f"{model.encoder.output_stride}{aux}")


def _metrics(info: dict, cfg) -> str:
    metrics = info.get("metrics") or {}
    miou = metrics.get("mIoU")
    if miou is None or (isinstance(miou, float) and math.isnan(miou)):
        return "not recorded with these weights (run `tools/eval.py` on your validation split)"
    at = f" at iteration {metrics['iteration']}" if "iteration" in metrics else ""
    extra = "".join(f", {k} {100 * metrics[k]:.2f}" for k in ("mAcc", "aAcc") if metrics.get(k) is not None)
    return (f"mIoU {100 * miou:.2f}{extra} on `{cfg.data.val_split}`{at} (segattn's evaluation: "
            f"{cfg.eval.mode}, scales {list(cfg.eval.scales)}{', flip' if cfg.eval.flip else ''})")


def model_card(cfg, class_names, palette, info: dict, title: str = None) -> str:
    """Markdown with Hub front matter; ``info``: the checkpoint's ``iteration``, ``metrics`` and ``source``."""
    source = info.get("source") or {}
    licence, licence_text = LICENCES.get(source.get("format"), (
        "other", "not set: these weights were trained with segattn; set their licence before sharing them "
                 "(the training data's terms apply too)"))
    model, data, train = cfg.model, cfg.data, cfg.train
    kind = parse_spec(model.head, "model.head")[0]
    trained_on, tag = dataset_class(data).trained_on(data)
    title = title or f"{kind} ({model.encoder.name}) on {trained_on}"
    if source:
        origin = f"converted from {source.get('format')} weights: {source.get('address')}"
        recipe = "as released by the source above (the card's config is segattn's equivalent)"
    else:
        origin = "trained with segattn"
        recipe = (f"`python tools/train.py config.yaml` (this folder's config): {train.max_iters} iterations of "
                  f"batch {train.batch_size} on {data.crop_size[0]} x {data.crop_size[1]} crops, lr {train.lr}, "
                  f"loss {train.loss}" + (f"; this checkpoint is from iteration {info['iteration']}"
                                          if info.get("iteration") else ""))
    lines = ["---", "library_name: segattn", "pipeline_tag: image-segmentation", f"license: {licence}",
             f"tags: [semantic-segmentation, {kind}, {tag}]", "---", "", f"# {title}", "",
             "| | |", "|---|---|",
             f"| architecture | {_architecture(model)} |",
             f"| classes | {len(class_names)} (table below) |",
             f"| training data | {trained_on}: `data.dataset: {data.dataset}` at `{data.root}`, split "
             f"`{data.train_split}` |",
             f"| training | {recipe} |",
             f"| validation | {_metrics(info, cfg)} |",
             f"| weights | {origin} |",
             f"| licence | {licence_text} |",
             "", "## Use", "", "```python", "from segattn import Segmenter", "",
             'segmenter = Segmenter.from_pretrained("THIS_FOLDER_OR_HUB_ID")',
             'labels = segmenter.predict("image.png")   # (H, W) train ids, as the config evaluates',
             "```", "", "## Classes", "", "| id | class | colour (RGB) |", "|---:|---|---|"]
    lines += [f"| {i} | {name} | {tuple(palette[i])} |" for i, name in enumerate(class_names)]
    return "\n".join(lines) + "\n"


__all__ = ["model_card"]
