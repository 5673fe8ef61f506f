"""Reusable attention blocks, one file each, registered by name; ``create_attention(spec, channels)``.

Every block maps ``(B, C, H, W) -> (B, C, H, W)`` and takes ``channels``
first. A spec is a name (``"se"``) or a mapping with the block's own options
(``{"type": "se", "reduction": 8}``); ``"none"`` means no block.

Registration is the one loop below: every module of the folder is imported,
so a block registers itself in ``ATTENTION`` by being a file here. Import a
block's class from its own module (``from segattn.models.attention.eca import
ECABlock``).
"""
from ...registry import import_all
from ..registry import ATTENTION

import_all(__name__, __path__)


def is_none(spec) -> bool:
    return spec is None or spec == "none" or (hasattr(spec, "get") and spec.get("type") == "none")


def create_attention(spec, channels: int, key: str = "attention"):
    """The block ``spec`` names, for ``channels`` channels; None for ``none``."""
    if is_none(spec):
        return None
    return ATTENTION.build(spec, key, channels)


__all__ = ["ATTENTION", "create_attention", "is_none"]
