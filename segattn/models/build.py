"""Config -> model. ``build_model(cfg)`` is the one way to make a segmentor.

The model section (see :class:`segattn.config.ModelConfig`) is type-checked
first; :func:`check_model_config` then checks every name against the
registries and every head / block option against that class's signature, so a
wrong name or a typo in an option is one clear error naming the key.
"""
from omegaconf import OmegaConf
from torch import nn

from ..config import check_once, model_config
from ..errors import ConfigError
from ..registry import parse_spec
from .attention import create_attention, is_none
from .encoders import Encoder
from .heads.fcn import AuxFCNHead
from .init import init_heads_like_mmseg
from .layers import convert_batchnorm_to_groupnorm, norm_layer
from .registry import ATTENTION, HEADS, NORMS, OUTPUT_STRIDES
from .segmentor import Segmentor


def check_model_config(model, source: str = "config"):
    """Names and options of the model section against what is registered; ConfigError naming the key.

    A section whose contents passed before (a tool's load, then the builder) is not checked again.
    """
    check_once("model", model, lambda: _check_model(model, source))


def _check_model(model, source: str):
    try:
        HEADS.check(model.head, "model.head")
        for key in ("context_block", "encoder.block_attention"):
            spec = OmegaConf.select(model, key)
            if not is_none(spec):
                ATTENTION.check(spec, f"model.{key}")
        if model.norm not in NORMS:
            raise ConfigError(f"model.norm must be one of {', '.join(NORMS)}, got {model.norm!r}")
        if model.encoder.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"model.encoder.output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, "
                              f"got {model.encoder.output_stride}")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def build_head(model, in_channels, norm) -> nn.Module:
    """The head ``model.head`` names, with its own options (checked by :func:`check_model_config`), on the
    encoder's ``(layer3, layer4)`` widths ``in_channels``: layer4's, or both for a head that ``takes_layer3``."""
    name, options = parse_spec(model.head, "model.head")
    return HEADS.create(name, options, "model.head", in_channels[1] if not HEADS[name].takes_layer3 else in_channels,
                        model.channels, model.num_classes,
                        dropout=model.dropout, norm=norm)


def build_model(cfg=None, source: str = "config") -> Segmentor:
    """Build a :class:`Segmentor` from a whole config or its ``model`` section."""
    model = model_config(cfg, source)
    check_model_config(model, source)
    norm = norm_layer(model.norm)
    encoder = Encoder(model.encoder.name, model.encoder.weights, model.encoder.output_stride,
                      block_attention=model.encoder.block_attention,
                      attention_stages=tuple(model.encoder.attention_stages))
    aux_in, head_in = encoder.out_channels
    head = build_head(model, (aux_in, head_in), norm)
    aux = AuxFCNHead(aux_in, model.num_classes, model.aux.channels, model.dropout, norm) if model.aux.enabled else None
    context = create_attention(model.context_block, head_in, "model.context_block")
    segmentor = Segmentor(encoder, head, aux, context, align_corners=model.align_corners)
    if model.init == "mmseg":
        init_heads_like_mmseg(segmentor)
    if model.norm == "gn":
        convert_batchnorm_to_groupnorm(segmentor)
    return segmentor
