"""Reusable attention blocks, one file each."""
from .non_local import NonLocalBlock

__all__ = ["NonLocalBlock"]
