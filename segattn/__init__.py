"""segattn: semantic segmentation with attention (DANet, CCNet, Non-local, FCN)."""
from .models import build_model

__version__ = "0.1.0"
__all__ = ["build_model", "__version__"]
