"""What every decode head shares: its norm, its classifier, and the contract a head signs.

A head maps encoder features ``(B, C_in, H, W)`` to a dict of logits
``{"main": (B, K, H, W), ...}``. Everything the rest of segattn knows about a
head it reads from the head's class, never from a list elsewhere; the base
class gives every item a default, so a head states only what differs:

* its options: keyword arguments of ``__init__`` with the paper's defaults
  (checked against the signature; the registry's reserved arguments aside);
* its outputs: extra training outputs (DANet's single-branch predictions)
  weighted by ``loss_weights``; those named in ``presence_outputs`` are
  ``(B, K)`` logits of which classes an image holds, trained by a binary
  cross-entropy against the classes its label has (EncNet's SE loss);
* its maps: ``map_kinds`` (kinds of :data:`segattn.models.maps.MAP_KINDS`) and
  ``attention_maps``, which returns exactly those;
* its input: layer4 (after the context block, if any); with ``takes_layer3``
  the pair ``(layer3, layer4)``, and ``in_channels`` the pair of their widths
  (ANN's fusion of the two stages);
* ``starts_as_identity``: the residual attention blocks (attribute names) that
  start as the identity, so the head starts as its frame without attention;
* its names: ``title`` (tables and figures), ``legacy_keys`` and
  ``legacy_options`` (old checkpoints and configs);
* its mmsegmentation hooks: ``mmseg_type``, ``mmseg_folder``, ``mmseg_keys``,
  ``mmseg_losses`` and ``mmseg_init`` (``model.init: mmseg``);
* ``onnx_operators``: ONNX operators its export may use beyond
  :data:`segattn.deploy.export.PORTABLE_OPERATORS`.

docs/extending.md is the checklist of this contract.
"""
from typing import Dict, FrozenSet, Tuple

import torch
from torch import nn

from ..layers import Classifier


class DecodeHead(nn.Module):
    title: str = None  # the paper's name in tables and figures ("CCNet"); None: the registered name
    # the survey's family of its attention: channel, regions, both, self-attention (None: none, the FCN baseline)
    family: str = None
    # old state-dict key prefixes -> current ones, for checkpoints written before a rename
    legacy_keys: Dict[str, str] = {}
    # flat ``model.<key>`` options of the first config format -> this head's option (moved into model.head on load)
    legacy_options: Dict[str, str] = {}
    # mmsegmentation's key prefixes for this head's modules -> ours (segattn.interop.mmseg; its ConvModule's
    # ``conv`` / ``bn`` and mmcv's ``Scale`` are mapped there, for every head)
    mmseg_keys: Dict[str, str] = {"conv_seg.": "cls_seg.1."}
    mmseg_type: str = None  # mmsegmentation's name of this head (None: mmsegmentation has no such head)
    mmseg_folder: str = None  # the folder of mmsegmentation's configs/ with its models (None: the registered name)
    # our output names -> the names of their losses in mmsegmentation's training log (its cascade's decode_0, ...)
    mmseg_losses: Dict[str, str] = {"main": "decode.loss_ce"}
    map_kinds: Tuple[str, ...] = ()  # the kinds attention_maps returns (segattn.models.maps.MAP_KINDS)
    presence_outputs: Tuple[str, ...] = ()  # extra outputs (B, K): per class, is it in the image (binary CE)
    takes_layer3: bool = False  # True: forward and attention_maps take (layer3, layer4), in_channels their widths
    starts_as_identity: Tuple[str, ...] = ()  # residual attention blocks (attribute names) that start as the identity
    onnx_operators: FrozenSet[str] = frozenset()  # ONNX operators beyond the portable set its export may use

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float = 0.1,
                 norm=nn.BatchNorm2d):
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.num_classes = num_classes
        self.norm = norm
        self.cls_seg = Classifier(channels, num_classes, dropout)
        self.loss_weights: Dict[str, float] = {}  # extra outputs' loss weights; "main" is always 1

    def inputs(self, layer3: torch.Tensor, layer4: torch.Tensor):
        """What ``forward`` and ``attention_maps`` take: layer4, or ``(layer3, layer4)`` where ``takes_layer3``."""
        return (layer3, layer4) if self.takes_layer3 else layer4

    def attention_maps(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Attention weights of one forward on head input ``x``, keyed by kind; empty for a head without attention.

        Each key is one of ``map_kinds``, in the shape :data:`segattn.models.maps.MAP_KINDS` gives for it, so the
        analysis code needs no head names.
        """
        return {}

    def mmseg_init(self):
        """What mmsegmentation initialises otherwise than :func:`segattn.models.init.init_heads_like_mmseg`'s rules
        (He fan-out conv-norm-ReLUs, N(0, 0.01) classifier); nothing by default."""
