"""Models: encoders, decode heads, attention blocks, the segmentor and its builder."""
from .build import build_model, check_model_config
from .registry import ATTENTION, HEADS
from .segmentor import Segmentor

__all__ = ["ATTENTION", "HEADS", "Segmentor", "build_model", "check_model_config"]
