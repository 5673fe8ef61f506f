"""EncNet head (Zhang et al., CVPR 2018, Sec. 3): the context encoding module and the semantic-encoding loss.

"Context Encoding for Semantic Segmentation": an encoding layer learns K = 32
codewords ``c_k`` and smoothing factors ``s_k``; each pixel ``x_i`` is softly
assigned to them, ``a_ik = softmax_k(s_k ||x_i - c_k||^2)``, and the image is
summarised by the aggregated residuals ``e_k = sum_i a_ik (x_i - c_k)``
(then BN, ReLU, the mean over k). That summary gates the channels,
``relu(x + x * sigmoid(W e))`` (SE-style: what to look for, not where), and a
linear layer predicts from it which classes the image holds, trained with a
binary cross-entropy against the classes present in the label (the SE loss,
weight 0.2). In mmsegmentation's ``EncHead`` arrangement: 3x3 conv-norm-ReLU
to ``channels`` on layer4 -> the encoding module (a 1x1 conv-norm-ReLU before
the encoding layer) -> the classifier. The distances are formed as
``||x||^2 - 2 x c^T + ||c||^2`` and the residuals as ``a^T x - (sum_i a_i) c``:
``O(HW K)`` memory where the paper's form expands a ``(B, HW, K, C)`` tensor
(1.2 GB at batch 2 on 97 x 97 features).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormReLU, as_sequence
from ..registry import HEADS
from .base import DecodeHead


class Encoding(nn.Module):
    """The encoding layer: ``(B, C, H, W)`` -> the aggregated residuals ``(B, K, C)`` (mmsegmentation's names)."""

    def __init__(self, channels: int, num_codes: int):
        super().__init__()
        std = 1.0 / (num_codes * channels) ** 0.5
        self.codewords = nn.Parameter(torch.empty(num_codes, channels).uniform_(-std, std))
        self.scale = nn.Parameter(torch.empty(num_codes).uniform_(-1, 0))

    def assignments(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N, C)`` -> ``(B, N, K)``: each pixel's soft assignment to the codewords."""
        c = self.codewords
        distances = (x * x).sum(-1, keepdim=True) - 2 * torch.matmul(x, c.t()) + (c * c).sum(-1)
        return torch.softmax(self.scale * distances, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x)
        a = self.assignments(x)
        return torch.bmm(a.transpose(1, 2), x) - a.sum(1).unsqueeze(-1) * self.codewords


class EncModule(nn.Module):
    """Encoding, BN, ReLU, the mean over the codes; the channel gate from it. Returns ``(summary, gated map)``."""

    def __init__(self, channels: int, num_codes: int, norm=nn.BatchNorm2d):
        super().__init__()
        self.encoding_project = ConvNormReLU(channels, channels, 1, norm)
        self.encoding = nn.Sequential(Encoding(channels, num_codes), nn.BatchNorm1d(num_codes), nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.Sigmoid())

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C)``: the encoding, its codes averaged."""
        return self.encoding(self.encoding_project(x)).mean(dim=1)

    def forward(self, x: torch.Tensor):
        summary = self.summary(x)
        gate = self.fc(summary).reshape(x.shape[0], x.shape[1], 1, 1)
        return summary, F.relu(x + x * gate)


@HEADS.register("encnet")
class EncHead(DecodeHead):
    title = "EncNet"
    family = "channel"
    mmseg_type = "EncHead"
    mmseg_losses = {"main": "decode.loss_ce", "se": "decode.loss_se"}
    presence_outputs = ("se",)
    map_kinds = ("channel_gate",)
    onnx_operators = frozenset({"ReduceSum", "Gemm"})  # the distances' squared norms; the gate's linear layer

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_codes: int = 32,
                 use_se_loss: bool = True, se_loss_weight: float = 0.2, dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        if num_codes < 1:
            raise ValueError(f"num_codes must be >= 1, got {num_codes}")
        if se_loss_weight < 0:
            raise ValueError(f"se_loss_weight must be >= 0, got {se_loss_weight}")
        self.bottleneck = ConvNormReLU(in_channels, channels, norm=norm)
        self.enc_module = EncModule(channels, num_codes, norm)
        self.se_layer = nn.Linear(channels, num_classes) if use_se_loss else None
        if use_se_loss:
            self.loss_weights = {"se": se_loss_weight}

    def forward(self, x: torch.Tensor) -> dict:
        summary, out = self.enc_module(self.bottleneck(x))
        out = {"main": self.cls_seg(out)}
        if self.training and self.se_layer is not None:
            out["se"] = self.se_layer(summary)  # (B, K): which classes the image holds
        return out

    def attention_maps(self, x: torch.Tensor) -> dict:
        return {"channel_gate": self.enc_module.fc(self.enc_module.summary(self.bottleneck(x)))}
