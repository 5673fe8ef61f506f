"""DANet dual attention head (Fu et al., CVPR 2019, Sec. 3).

Two branches from the 2048-channel features, each a 3x3 conv to 512:
the position attention module (PAM, Sec. 3.2) and the channel attention module
(CAM, Sec. 3.3), each followed by a 3x3 conv. Their sum is classified; in
training the PAM-only and CAM-only predictions are returned too, so the three
losses of the paper's code can be summed; ``loss_weights`` weighs the two extra
losses (1 and 1 in the authors' code).
"""
import torch
from torch import nn

from ...ops.full_attention import AttentionRows, check_impl
from ..layers import Classifier, ConvNormReLU, as_sequence, attend_all, attend_channels
from ..registry import HEADS
from .base import DecodeHead


class PositionAttention(nn.Module):
    """PAM: ``x (B, C, H, W)``; every position attends to all HxW positions.

    ``S = softmax(Q^T K)`` over the key positions with Q, K 1x1 convs to
    ``key_channels`` (C/8 by default, as the paper; mmsegmentation's DAHead
    ``pam_channels``) and V a 1x1 conv to C; ``out = gamma * V S^T + x``, gamma initialised to 0.
    ``impl="lean"`` never keeps S (O(HW) memory for backward, see :mod:`segattn.ops.full_attention`);
    ``"dense"`` is the paper's code, which does.
    """

    def __init__(self, in_channels: int, key_channels: int = None, impl: str = "lean"):
        super().__init__()
        key_channels = key_channels or max(1, in_channels // 8)
        self.query_conv = nn.Conv2d(in_channels, key_channels, 1)
        self.key_conv = nn.Conv2d(in_channels, key_channels, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.impl = check_impl(impl)

    def attention(self, x: torch.Tensor) -> AttentionRows:
        """Attention weights ``(B, HW, HW)``, row i = query position i, each row formed when indexed."""
        return AttentionRows(as_sequence(self.query_conv(x)), as_sequence(self.key_conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = attend_all(self.query_conv(x), self.key_conv(x), self.value_conv(x), x, impl=self.impl)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    """CAM: ``x (B, C, H, W)``; every channel attends to all C channels.

    Energies ``E = X X^T`` (C x C). As in the authors' code, the softmax is taken
    over ``max(E) - E`` (row-wise max), which favours dissimilar channels and
    keeps the exponent non-positive; ``out = gamma * A X + x``, gamma starts at 0.
    """

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, C, C)``."""
        f = x.flatten(2)
        energy = torch.bmm(f, f.transpose(1, 2))
        energy = energy.amax(dim=-1, keepdim=True) - energy
        return torch.softmax(energy, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * attend_channels(self.attention(x), x) + x


@HEADS.register("danet")
class DANetHead(DecodeHead):
    mmseg_keys = {"conv_seg.": "cls_seg.1.", "pam_conv_seg.": "cls_pam.1.", "cam_conv_seg.": "cls_cam.1.",
                  "pam_in_conv.": "conv_pam_in.", "pam_out_conv.": "conv_pam_out.", "cam_in_conv.": "conv_cam_in.",
                  "cam_out_conv.": "conv_cam_out.", "pam.query_project.": "pam.query_conv.",
                  "pam.key_project.": "pam.key_conv.", "pam.value_project.": "pam.value_conv."}
    mmseg_type = "DAHead"
    mmseg_losses = {"main": "decode.pam_cam.loss_ce", "pam": "decode.pam.loss_ce", "cam": "decode.cam.loss_ce"}
    title = "DANet"
    family = "self-attention"
    legacy_options = {"extra_loss_weights": "loss_weights"}
    map_kinds = ("position", "channel")
    starts_as_identity = ("pam", "cam")

    def __init__(self, in_channels: int, channels: int, num_classes: int, loss_weights=None,
                 pam_channels: int = None, dropout: float = 0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        weights = {"pam": 1.0, "cam": 1.0, **(loss_weights or {})}
        if set(weights) != {"pam", "cam"} or min(weights.values()) < 0:
            raise ValueError(f"loss_weights takes pam and cam, each >= 0; got {dict(loss_weights)}")
        self.loss_weights = {name: float(w) for name, w in weights.items()}
        self.conv_pam_in = ConvNormReLU(in_channels, channels, norm=norm)
        self.pam = PositionAttention(channels, pam_channels)  # None: channels // 8
        self.conv_pam_out = ConvNormReLU(channels, channels, norm=norm)
        self.conv_cam_in = ConvNormReLU(in_channels, channels, norm=norm)
        self.cam = ChannelAttention()
        self.conv_cam_out = ConvNormReLU(channels, channels, norm=norm)
        self.cls_pam = Classifier(channels, num_classes, dropout)
        self.cls_cam = Classifier(channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> dict:
        pam = self.conv_pam_out(self.pam(self.conv_pam_in(x)))
        cam = self.conv_cam_out(self.cam(self.conv_cam_in(x)))
        if not self.training:
            return {"main": self.cls_seg(pam + cam)}
        # training: the classifiers' dropout masks drawn in mmsegmentation's DAHead order (pam, cam, sum), so
        # one seed gives both the same step
        extra = {"pam": self.cls_pam(pam), "cam": self.cls_cam(cam)}
        return {"main": self.cls_seg(pam + cam), **extra}

    def attention_maps(self, x: torch.Tensor) -> dict:
        pam_in, cam_in = self.conv_pam_in(x), self.conv_cam_in(x)
        return {"position": self.pam.attention(pam_in), "channel": self.cam.attention(cam_in),
                "channel_input": cam_in}
