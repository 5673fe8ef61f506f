"""Segmentor: encoder -> (optional context block) -> decode head (+ auxiliary FCN head on layer3).

Training forward returns a dict of logits, every entry upsampled (bilinear) to
the input size: ``main``, ``aux`` when the aux head is on, and any
head-specific extras (DANet's ``pam`` and ``cam``). Eval forward returns the
main logits ``(B, K, H, W)`` at the input size.
"""
import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Segmentor(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module, aux_head: nn.Module = None, context: nn.Module = None):
        super().__init__()
        self.encoder = encoder
        self.context = context  # optional attention block on the head's input
        self.head = head
        self.aux_head = aux_head

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        aux_features, features = self.encoder(x)
        if self.context is not None:
            features = self.context(features)
        out = self.head(features)
        if not self.training:
            return resize(out["main"], size)
        if self.aux_head is not None:
            out["aux"] = self.aux_head(aux_features)["main"]
        return {name: resize(logits, size) for name, logits in out.items()}
