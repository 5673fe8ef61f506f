"""Decode heads, one file each."""
from .ccnet import RCCAHead
from .danet import ChannelAttention, DANetHead, PositionAttention
from .fcn import AuxFCNHead, FCNHead
from .non_local import NonLocalHead

__all__ = ["AuxFCNHead", "ChannelAttention", "DANetHead", "FCNHead", "NonLocalHead", "PositionAttention", "RCCAHead"]
