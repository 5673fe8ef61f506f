"""Models: encoders, decode heads, attention blocks, the segmentor and its builder."""
from .build import build_model
from .segmentor import Segmentor

__all__ = ["Segmentor", "build_model"]
