"""The model's name tables: decode heads and attention blocks register themselves here.

``HEADS`` classes are built as ``cls(in_channels, channels, num_classes,
dropout=, norm=, **options)``; ``ATTENTION`` classes as ``cls(channels,
**options)``. Everything else in their signatures is an option a config sets.
"""
from ..registry import Registry

HEADS = Registry("head", reserved=("in_channels", "channels", "num_classes", "dropout", "norm"))
ATTENTION = Registry("attention block", reserved=("channels",))
NORMS = ("bn", "syncbn", "gn")
OUTPUT_STRIDES = (8, 16, 32)
