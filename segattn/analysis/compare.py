"""Train several configs under one schedule and tabulate them: the comparison of attention heads/blocks.

Each row: val mIoU, parameters, forward GFLOPs at the training crop, the
memory the head (with any context block) saves for backward at that crop, and
the mean wall time of a training step, all measured in the same process. On a
dataset that says where each image's key lies (the context probe,
:mod:`segattn.data.context_probe`), a row also holds the accuracy on object
pixels that share a row or column with the key and on the others
(:func:`segattn.analysis.probe.reach_accuracy`). Runs of one config under
several seeds (``train.seed``) share a name; :func:`markdown` gives their mean
and, in brackets, their range.
"""
import copy
import json
import os
import time

import numpy as np

import torch
from torch import nn

from ..data import dataset_class
from ..data.io import output_file
from ..engine.trainer import Trainer
from ..models.attention import is_none
from ..registry import parse_spec
from .benchmark import count_flops, saved_activation_bytes

MARK_START, MARK_END = "<!-- compare:start -->", "<!-- compare:end -->"


class _Head(nn.Module):
    """The model after its encoder: the context block, if any, and the head."""

    def __init__(self, model):
        super().__init__()
        self.context, self.head = model.context, model.head

    def forward(self, aux_features, features):
        features = self.context(features) if self.context is not None else features
        return self.head(self.head.inputs(aux_features, features))


def _block_name(model_cfg) -> str:
    """The attention block a config adds (in the encoder's blocks, else as context block), or none."""
    for spec in (model_cfg.encoder.block_attention, model_cfg.context_block):
        if not is_none(spec):
            return parse_spec(spec, "block")[0]
    return "none"


def _head_name(model_cfg) -> str:
    name, options = parse_spec(model_cfg.head, "model.head")
    return f"{name} R={options['recurrence']}" if "recurrence" in options else name


def with_seed(cfg, seed: int):
    """A copy of ``cfg`` trained under ``train.seed=seed`` in its own folder (experiment ``<name>_seed<seed>``)."""
    cfg = copy.deepcopy(cfg)
    cfg.train.seed = seed
    cfg.train.experiment = f"{cfg.train.experiment}_seed{seed}"
    return cfg


def compare_row(cfg, name: str, progress: bool = False) -> dict:
    start = time.perf_counter()
    trainer = Trainer(cfg, progress=progress)
    metrics = trainer.fit()
    train_s = time.perf_counter() - start
    times = trainer.step_seconds
    model = trainer.model.eval()
    h, w = cfg.data.crop_size
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():  # a pair of images: a norm on pooled features (SK's) needs two values a channel in training
        aux_feats, feats = model.encoder(torch.randn(2, 3, h, w))
    head = _Head(copy.deepcopy(model)).train()  # a copy: a train-mode forward moves batch-norm statistics
    row = {
        "name": name, "head": _head_name(cfg.model), "block": _block_name(cfg.model), "seed": int(cfg.train.seed),
        "mIoU": metrics.get("mIoU", float("nan")),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gflops": count_flops(model, (x,)) / 1e9,
        "head_mb": saved_activation_bytes(head, (aux_feats.requires_grad_(), feats.requires_grad_())) / 2 / 2**20,
        "step_s": sum(times) / max(1, len(times)),
        "train_s": train_s,
    }
    if hasattr(dataset_class(cfg.data), "key_box"):  # the probe: where the key lies decides what a head can see
        from .probe import reach_accuracy

        device = next(trainer.model.parameters()).device
        row.update({k: v for k, v in reach_accuracy(trainer.model, cfg, device).items() if k in ("row_column",
                                                                                                    "elsewhere")})
    if hasattr(dataset_class(cfg.data), "key_boxes"):  # the two-key probe: does the object get its own key's class
        from .probe import pair_accuracy

        row["objects"] = pair_accuracy(trainer.model, cfg, next(trainer.model.parameters()).device)["objects"]
    return row


def _cell(values, scale: float, digits: int) -> str:
    """One value as it is, several (seeds) as mean (min-max)."""
    values = np.asarray(values, float) * scale
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ({values.min():.{digits}f}–{values.max():.{digits}f})"


def markdown(rows) -> str:
    """The comparison table; rows sharing a name (one config, several seeds) make one line."""
    groups = {}
    for r in rows:
        groups.setdefault(r["name"], []).append(r)
    reach = all("row_column" in r for r in rows)
    pairs = all("objects" in r for r in rows)
    seeds = max(len(g) for g in groups.values())
    head = ["config", "head", "block"] + (["row/column acc. %", "elsewhere acc. %"] if reach else []) + (
        ["object acc. % (two keys)"] if pairs else []) + ["val mIoU", "params (M)", "GFLOPs", "head act. MB", "step s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, group in groups.items():
        first = group[0]
        cells = [name, first["head"], first["block"]]
        if reach:
            cells += [_cell([r["row_column"] for r in group], 100, 1), _cell([r["elsewhere"] for r in group], 100, 1)]
        if pairs:
            cells.append(_cell([r["objects"] for r in group], 100, 1))
        cells += [_cell([r["mIoU"] for r in group], 100, 2), f"{first['params_m']:.2f}", f"{first['gflops']:.2f}",
                  f"{first['head_mb']:.1f}", _cell([r["step_s"] for r in group], 1, 2)]
        lines.append("| " + " | ".join(cells) + " |")
    if seeds > 1:
        lines.append(f"\n{seeds} seeds (train.seed) per config: mean (min–max).")
    return "\n".join(lines)


def out_dir_overrides(out_dir: str) -> list:
    """The overrides that put every run of a comparison in ``out_dir`` (checkpoints) and ``out_dir/runs`` (logs),
    so a comparison never meets a run trained on its own (``checkpoints/<experiment>``)."""
    return [f"train.out_dir={out_dir}", f"train.log_dir={os.path.join(out_dir, 'runs')}"]


def write_results(out_dir: str, rows: list, table: str, command: str) -> list:
    """The table as ``compare.md`` (its command above it) and the rows as ``compare.json``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    md, js = os.path.join(out_dir, "compare.md"), os.path.join(out_dir, "compare.json")
    with output_file(md) as tmp, open(tmp, "w") as f:
        f.write(f"`{command}`\n\n{table}\n")
    with output_file(js) as tmp, open(tmp, "w") as f:
        json.dump({"command": command, "rows": rows}, f, indent=1)
    return [md, js]


def write_into(path: str, table: str, command: str):
    """Replace the text between the compare markers of ``path`` with the table and its command."""
    text = open(path).read() if os.path.isfile(path) else ""
    block = f"{MARK_START}\n`{command}`\n\n{table}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        text = text[: text.index(MARK_START)] + block + text[text.index(MARK_END) + len(MARK_END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with output_file(path) as tmp, open(tmp, "w") as f:
        f.write(text)
