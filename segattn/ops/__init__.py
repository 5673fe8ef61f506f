"""Operators: criss-cross attention (functional op, module, reference)."""
from .criss_cross import (
    CrissCrossAttention,
    criss_cross_attention,
    select_impl,
    set_impl,
    triton_available,
)
from .reference import criss_cross_attention_maps, criss_cross_attention_reference

__all__ = [
    "CrissCrossAttention",
    "criss_cross_attention",
    "criss_cross_attention_maps",
    "criss_cross_attention_reference",
    "select_impl",
    "set_impl",
    "triton_available",
]
