"""The model's name tables: decode heads and attention blocks register themselves here.

``HEADS`` classes are built as ``cls(in_channels, channels, num_classes,
dropout=, norm=, **options)``; ``ATTENTION`` classes as ``cls(channels,
**options)``. Everything else in their signatures is an option a config sets.
The tables themselves live in :mod:`segattn.registry`, so the config layer
reads what a head declares (its legacy options) without importing the models.
"""
from ..registry import ATTENTION, HEADS

NORMS = ("bn", "syncbn", "gn")
OUTPUT_STRIDES = (8, 16, 32)

__all__ = ["ATTENTION", "HEADS", "NORMS", "OUTPUT_STRIDES"]
