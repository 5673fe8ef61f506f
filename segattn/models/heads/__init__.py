"""Decode heads, one file each; every module here is imported so its head registers itself."""
import importlib
import pkgutil

from .base import DecodeHead
from .ccnet import RCCAHead
from .danet import ChannelAttention, DANetHead, PositionAttention
from .fcn import AuxFCNHead, FCNHead
from .non_local import NonLocalHead

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["AuxFCNHead", "ChannelAttention", "DANetHead", "DecodeHead", "FCNHead", "NonLocalHead",
           "PositionAttention", "RCCAHead"]
