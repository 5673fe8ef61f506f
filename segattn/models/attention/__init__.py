"""Reusable attention blocks, one file each, and ``create_attention(name, channels)``.

Every block maps ``(B, C, H, W) -> (B, C, H, W)``.
"""
from .cbam import CBAMBlock
from .eca import ECABlock
from .non_local import NonLocalBlock
from .residual_attention import ResidualAttentionBlock
from .selective_kernel import SKBlock
from .self_attention import SelfAttentionBlock
from .squeeze_excite import SEBlock

BLOCKS = {"se": SEBlock, "eca": ECABlock, "sk": SKBlock, "cbam": CBAMBlock, "residual": ResidualAttentionBlock,
          "mhsa": SelfAttentionBlock, "nonlocal": NonLocalBlock}


def create_attention(name: str, channels: int):
    """Attention block by name; ``none`` gives None."""
    if name in (None, "none"):
        return None
    if name not in BLOCKS:
        raise ValueError(f"unknown attention block {name!r}; valid: none, {', '.join(BLOCKS)}")
    return BLOCKS[name](channels)


__all__ = ["BLOCKS", "CBAMBlock", "ECABlock", "NonLocalBlock", "ResidualAttentionBlock", "SEBlock", "SKBlock",
           "SelfAttentionBlock", "create_attention"]
