"""segattn: semantic segmentation with attention (DANet, CCNet, Non-local, FCN)."""
from .models import build_model

__version__ = "0.1.0"
__all__ = ["Segmenter", "build_model", "__version__"]


def __getattr__(name):
    """``segattn.Segmenter`` imported on first use: ``import segattn`` stays light for the tools."""
    if name == "Segmenter":
        from .engine.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'segattn' has no attribute {name!r}")
