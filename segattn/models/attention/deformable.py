"""Modulated deformable convolution (DCNv2: Zhu et al., CVPR 2019, Sec. 3.1) as a residual block.

The "where" family of attention: instead of weighing positions, each of the 3x3
taps of a convolution samples the input at a learned offset from its grid
position, its contribution scaled by a learned modulation in (0, 1):
``y(p) = sum_k w_k * m_k(p) * x(p + p_k + dp_k(p))`` (bilinear between pixels).
A 3x3 conv predicts the 2 x 9 offsets and the 9 modulation logits from ``x``;
it starts at zero (offsets 0, modulations sigmoid(0) = 0.5), as the paper
initialises it, so the block starts as a plain 3x3 convolution of its taps.
Here ``x + gamma * BN(DCN(x))`` with ``gamma`` zero at the start, so the
block starts as the identity (as PAM and CCA do). ``torchvision.ops.deform_conv2d``
does the sampling. ONNX (opset 17, what ``tools/export.py`` writes) has no
deformable convolution: an export with this block is refused in one line.
"""
import torch
from torch import nn
from torchvision.ops import deform_conv2d

from ..registry import ATTENTION


@ATTENTION.register("dcn")
class DeformableBlock(nn.Module):
    family = "regions"  # the survey's family (benchmarks/atlas.py)
    onnx_refusal = ("has no ONNX form at opset 17 (a deformable convolution: ONNX's DeformConv is opset 19, and "
                    "torchvision's deform_conv2d has no exporter to it): export a model without this block")

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        taps = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.offset = nn.Conv2d(channels, 3 * taps, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.norm = nn.BatchNorm2d(channels)
        self.gamma = nn.Parameter(torch.zeros(1))

    def offsets_and_modulation(self, x: torch.Tensor):
        """``(offsets (B, 2 k^2, H, W): dy, dx per tap), modulation (B, k^2, H, W) in (0, 1))``."""
        taps = self.kernel_size * self.kernel_size
        out = self.offset(x)
        return out[:, : 2 * taps], torch.sigmoid(out[:, 2 * taps:])

    def deform(self, x: torch.Tensor) -> torch.Tensor:
        """The modulated deformable convolution, in float32 under autocast too (torchvision's CPU kernel has no
        bfloat16 or float16 form), returned in the input's dtype."""
        offsets, modulation = self.offsets_and_modulation(x)
        pad = self.kernel_size // 2
        with torch.autocast(x.device.type, enabled=False):
            out = deform_conv2d(x.float(), offsets.float(), self.weight.float(), padding=(pad, pad),
                                mask=modulation.float())
        return out.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.norm(self.deform(x))
