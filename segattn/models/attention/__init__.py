"""Reusable attention blocks, one file each, registered by name; ``create_attention(spec, channels)``.

Every block maps ``(B, C, H, W) -> (B, C, H, W)`` and takes ``channels``
first. A spec is a name (``"se"``) or a mapping with the block's own options
(``{"type": "se", "reduction": 8}``); ``"none"`` means no block.
"""
import importlib
import pkgutil

from ..registry import ATTENTION
from .cbam import CBAMBlock
from .eca import ECABlock
from .non_local import NonLocalBlock
from .residual_attention import ResidualAttentionBlock
from .selective_kernel import SKBlock
from .self_attention import SelfAttentionBlock
from .squeeze_excite import SEBlock

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def is_none(spec) -> bool:
    return spec is None or spec == "none" or (hasattr(spec, "get") and spec.get("type") == "none")


def create_attention(spec, channels: int, key: str = "attention"):
    """The block ``spec`` names, for ``channels`` channels; None for ``none``."""
    if is_none(spec):
        return None
    return ATTENTION.build(spec, key, channels)


__all__ = ["ATTENTION", "CBAMBlock", "ECABlock", "NonLocalBlock", "ResidualAttentionBlock", "SEBlock", "SKBlock",
           "SelfAttentionBlock", "create_attention", "is_none"]
