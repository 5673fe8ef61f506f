"""Config -> model. ``build_model(cfg)`` is the one way to make a segmentor.

The model section (see :class:`segattn.config.ModelConfig`) is type-checked and
validated first, so a wrong head name or a typo in a key is one clear error.
"""
from torch import nn

from ..config import model_config
from .attention import create_attention
from .encoders import Encoder
from .heads import AuxFCNHead, DANetHead, FCNHead, NonLocalHead, RCCAHead
from .layers import convert_batchnorm_to_groupnorm, norm_layer
from .segmentor import Segmentor


def build_head(model, in_channels: int, norm) -> nn.Module:
    common = dict(in_channels=in_channels, channels=model.channels, num_classes=model.num_classes,
                  dropout=model.dropout, norm=norm)
    if model.head == "fcn":
        return FCNHead(**common)
    if model.head == "ccnet":
        return RCCAHead(recurrence=model.recurrence, **common)
    if model.head == "danet":
        return DANetHead(**common)
    if model.head == "nonlocal":
        return NonLocalHead(reduction=model.reduction, use_scale=model.use_scale, **common)
    raise AssertionError(model.head)  # model_config() validated the name


def build_model(cfg=None, source: str = "config") -> Segmentor:
    """Build a :class:`Segmentor` from a whole config or its ``model`` section."""
    model = model_config(cfg, source)
    norm = norm_layer(model.norm)
    encoder = Encoder(model.encoder.name, model.encoder.weights, model.encoder.output_stride,
                      block_attention=model.encoder.block_attention,
                      attention_stages=tuple(model.encoder.attention_stages))
    aux_in, head_in = encoder.out_channels
    head = build_head(model, head_in, norm)
    aux = AuxFCNHead(aux_in, model.num_classes, model.aux.channels, model.dropout, norm) if model.aux.enabled else None
    context = create_attention(model.context_block, head_in)
    segmentor = Segmentor(encoder, head, aux, context)
    if model.norm == "gn":
        convert_batchnorm_to_groupnorm(segmentor)
    return segmentor
