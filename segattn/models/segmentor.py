"""Segmentor: encoder -> (optional context block) -> decode head (+ auxiliary FCN head on layer3).

Forward returns a dict of logits ``(B, K, H, W)``, every entry upsampled
(bilinear) to the input size, in both modes (one return type, as torchvision's
segmentation models): ``main`` always; in training also ``aux`` when the aux
head is on, and any head-specific extras (DANet's ``pam`` and ``cam``).
"""
import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, size, align_corners: bool = False) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class Segmentor(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Module, aux_head: nn.Module = None, context: nn.Module = None,
                 align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.encoder = encoder
        self.context = context  # optional attention block on the head's input
        self.head = head
        self.aux_head = aux_head

    def features(self, x: torch.Tensor):
        """``(layer3, head input)``: the aux head's features and layer4 after the context block, if any."""
        aux_features, features = self.encoder(x)
        return aux_features, (self.context(features) if self.context is not None else features)

    def forward(self, x: torch.Tensor) -> dict:
        size = x.shape[-2:]
        aux_features, features = self.features(x)
        out = self.head(self.head.inputs(aux_features, features))
        if not self.training:
            return {"main": resize(out["main"], size, self.align_corners)}
        if self.aux_head is not None:
            out["aux"] = self.aux_head(aux_features)["main"]
        # maps to the input size; an image-level output (EncNet's class presence, (B, K)) as it is
        return {name: resize(logits, size, self.align_corners) if logits.dim() == 4 else logits
                for name, logits in out.items()}
