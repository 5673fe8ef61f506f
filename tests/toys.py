"""A toy head and a toy dataset, registered as a user registers their own, so that every generic test covers them.

The test session imports this module first (``conftest.py``), so the registries the generic tests iterate over
hold these two beside the shipped heads and datasets; a tool run in a subprocess finds them through the config's
``imports: [toys]`` with this folder on ``PYTHONPATH``.
"""
import glob
import os

import numpy as np
import torch
from layouts import FIXTURES, scene, write_grey, write_jpg
from torch import nn

from segattn.data.listed import ListedDataset, register, table
from segattn.models import HEADS
from segattn.models.heads.base import DecodeHead
from segattn.models.layers import ConvNormReLU


@HEADS.register("toy_gate")
class ToyGateHead(DecodeHead):
    """A 3x3 conv, then a learnt sigmoid gate per pixel: a stand-in for a user's new head, with a
    query-independent map (its gate, normalised over the positions)."""

    title = "Toy gate"
    map_kinds = ("context",)

    def __init__(self, in_channels, channels, num_classes, gate_bias: float = 0.0, dropout=0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        self.conv = ConvNormReLU(in_channels, channels, norm=norm)
        self.gate = nn.Conv2d(channels, 1, 1)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x):
        out = self.conv(x)
        return {"main": self.cls_seg(out * torch.sigmoid(self.gate(out)))}

    def attention_maps(self, x):
        gate = torch.sigmoid(self.gate(self.conv(x))).flatten(1)  # (B, HW): one weight per position, for every query
        return {"context": gate / gate.sum(-1, keepdim=True)}


@register
class ToySquaresDataset(ListedDataset):
    """``ROOT/<split>/<n>.jpg`` with ``ROOT/<split>/<n>_label.png`` holding 10, 20, 30 for three classes."""

    name = "toy_squares"
    class_names = ["ground", "box", "ball"]
    labels = {"_label.png": table({10: 0, 20: 1, 30: 2})}
    layout = "ROOT/<split>/<n>.jpg and ROOT/<split>/<n>_label.png"

    @classmethod
    def split_files(cls, root, split):
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            from segattn.errors import MissingFileError

            raise MissingFileError(f"data.root={root!r}: no folder {folder!r}; expected {cls.layout}")
        images = {os.path.basename(p)[:-4]: p for p in sorted(glob.glob(os.path.join(folder, "*.jpg")))}
        labels = {os.path.basename(p)[:-len("_label.png")]: (p, "_label.png")
                  for p in sorted(glob.glob(os.path.join(folder, "*_label.png")))}
        return images, labels


def make_toy_squares(root):
    for split in ("fit", "check"):
        for n in range(3):
            image, label = scene(n + 40, [10, 20, 30])
            write_jpg(root / split / f"{n}.jpg", image)
            write_grey(root / split / f"{n}_label.png", label.astype(np.uint8))
    return root


FIXTURES["toy_squares"] = (make_toy_squares, ("fit", "check"), {})
