"""Spatial transformer (Jaderberg et al., NeurIPS 2015, Sec. 3) on feature maps.

The other member of the "where" family: a localisation net looks at the whole
map and predicts one affine warp ``theta`` (2 x 3) for the image; the map is
resampled through it (bilinear), so the next layers see the region the warp
selects, at the scale and rotation it chose. The localisation net here: a 3x3
conv-BN-ReLU to ``C / reduction`` channels, global average pooling, a hidden
linear layer with ReLU, and the linear layer to the six parameters, which
starts at zero weight and the identity's bias (the paper's initialisation), so
the block starts as the identity. The grid is formed from ``theta`` with
matmuls (not ``affine_grid``, which ONNX opset 17 lacks) and sampled with
``grid_sample`` (ONNX ``GridSample``, opset 16).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ATTENTION


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, H, W, 2)`` sampling grid of ``theta (B, 2, 3)`` in ``grid_sample``'s normalised coordinates (pixel
    centres, ``align_corners=False``): ``F.affine_grid``'s, written as a matmul so it exports at any size."""
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1
    xs, ys = xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)
    base = torch.stack([xs, ys, torch.ones_like(xs)], -1)                   # (H, W, 3): x, y, 1
    return torch.matmul(base.reshape(1, h * w, 3), theta.transpose(1, 2)).reshape(-1, h, w, 2)


@ATTENTION.register("stn")
class SpatialTransformerBlock(nn.Module):
    family = "regions"  # the survey's family (benchmarks/atlas.py)
    onnx_operators = frozenset({"GridSample", "Expand", "ConstantOfShape", "Gemm"})  # the grid and the sampling

    def __init__(self, channels: int, reduction: int = 4, hidden: int = 32):
        super().__init__()
        if reduction < 1 or hidden < 1:
            raise ValueError(f"reduction and hidden must be >= 1, got {reduction} and {hidden}")
        mid = max(1, channels // reduction)
        self.localisation = nn.Sequential(nn.Conv2d(channels, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid),
                                          nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(mid, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 6))
        nn.init.zeros_(self.fc[2].weight)
        with torch.no_grad():
            self.fc[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2, 3)``: the affine map from output to input coordinates (normalised to [-1, 1])."""
        return self.fc(self.localisation(x).mean((2, 3))).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = affine_grid(self.theta(x), x.shape[-2], x.shape[-1])
        return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
