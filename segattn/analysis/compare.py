"""Train several configs under one schedule and tabulate them: the comparison of attention heads/blocks.

Each row: val mIoU, parameters, forward GFLOPs at the training crop, the
memory the head (with any context block) saves for backward at that crop, and
the mean wall time of a training step, all measured in the same process.
"""
import os

import torch
from torch import nn

from ..engine.trainer import Trainer
from ..models.attention import is_none
from ..registry import parse_spec
from .benchmark import count_flops, saved_activation_bytes

MARK_START, MARK_END = "<!-- compare:start -->", "<!-- compare:end -->"


class _Head(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.context, self.head = model.context, model.head

    def forward(self, x):
        return self.head(self.context(x) if self.context is not None else x)


def _block_name(model_cfg) -> str:
    """The attention block a config adds (in the encoder's blocks, else as context block), or none."""
    for spec in (model_cfg.encoder.block_attention, model_cfg.context_block):
        if not is_none(spec):
            return parse_spec(spec, "block")[0]
    return "none"


def compare_row(cfg, name: str, progress: bool = False) -> dict:
    trainer = Trainer(cfg, progress=progress)
    metrics = trainer.fit()
    times = trainer.step_seconds
    model = trainer.model.eval()
    h, w = cfg.data.crop_size
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        feats = model.encoder(x)[1]
    head = _Head(model).train()
    return {
        "name": name, "head": parse_spec(cfg.model.head, "model.head")[0],
        "block": _block_name(cfg.model),
        "mIoU": metrics.get("mIoU", float("nan")),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gflops": count_flops(model, (x,)) / 1e9,
        "head_mb": saved_activation_bytes(head, (feats.requires_grad_(),)) / 2**20,
        "step_s": sum(times) / max(1, len(times)),
    }


def markdown(rows) -> str:
    lines = ["| config | head | block | val mIoU | params (M) | GFLOPs | head act. MB | step s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['head']} | {r['block']} | {100 * r['mIoU']:.2f} | {r['params_m']:.2f} | "
                     f"{r['gflops']:.2f} | {r['head_mb']:.1f} | {r['step_s']:.2f} |")
    return "\n".join(lines)


def write_into(path: str, table: str, command: str):
    """Replace the text between the compare markers of ``path`` with the table and its command."""
    text = open(path).read() if os.path.isfile(path) else ""
    block = f"{MARK_START}\n`{command}`\n\n{table}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        text = text[: text.index(MARK_START)] + block + text[text.index(MARK_END) + len(MARK_END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
