"""Small building blocks shared by every head: norm factory, conv-norm-relu, classifier, layout-keeping products."""
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from ..ops.full_attention import full_attention
from .registry import NORMS


def norm_layer(name: str = "bn"):
    """Return a callable ``channels -> nn.Module`` for the named normalisation.

    ``syncbn`` builds plain BatchNorm here; the trainer converts every BatchNorm
    (encoder included) to SyncBatchNorm when it runs under DDP, so one process
    trains with plain BatchNorm. ``gn`` is GroupNorm everywhere.
    """
    if name in ("bn", "syncbn"):
        return nn.BatchNorm2d
    if name == "gn":
        return partial(_group_norm, 32)
    raise ConfigError(f"model.norm: unknown norm {name!r}; valid: {', '.join(NORMS)}")


def convert_batchnorm_to_groupnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d (the encoder's too) by GroupNorm(32), affine weights kept.

    For small per-process batches and gradient accumulation, where batch
    statistics are too noisy (Wu & He, ECCV 2018).
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            gn = _group_norm(32, child.num_features)
            with torch.no_grad():
                gn.weight.copy_(child.weight)
                gn.bias.copy_(child.bias)
            setattr(module, name, gn)
        else:
            convert_batchnorm_to_groupnorm(child)
    return module


def _group_norm(groups: int, channels: int) -> nn.GroupNorm:
    while channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, channels)


class ConvNormReLU(nn.Sequential):
    """``k x k`` convolution (no bias) -> norm -> ReLU; the padding keeps the size unless given (PSANet's 1x1 conv
    with padding 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm=nn.BatchNorm2d, dilation: int = 1,
                 padding: int = None):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size,
                      padding=dilation * (kernel_size // 2) if padding is None else padding, dilation=dilation,
                      bias=False),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvNorm(nn.Sequential):
    """``k x k`` convolution (no bias) -> norm, no activation (mmcv's ``ConvModule`` without one: a block's output
    projection, a fusion before a residual sum)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, norm=nn.BatchNorm2d):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         norm(out_channels))


class Classifier(nn.Sequential):
    """Dropout2d then a 1x1 convolution to class logits (the ``cls_seg`` of every head)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__(nn.Dropout2d(dropout), nn.Conv2d(in_channels, num_classes, 1))


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a ``(B, C, H, W)`` tensor stored channels-last (and not also plain contiguous, as 1x1 maps are)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def as_sequence(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, HW, C)``, one row per pixel (a view; contiguous for a channels-last ``t``)."""
    return t.flatten(2).transpose(1, 2)


def attend_all(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, like: torch.Tensor, scale: float = 1.0,
               impl: str = "lean") -> torch.Tensor:
    """Every pixel attends to every pixel (Non-local, DANet's PAM): ``(B, Cv, H, W)`` in ``like``'s layout.

    ``q, k (B, Cq, H, W)``, ``v (B, Cv, H, W)``; :func:`segattn.ops.full_attention.full_attention` does the
    work (``impl="lean"``: no ``(HW x HW)`` matrix is kept). Its ``(B, HW, Cv)`` result is already the
    channels-last layout; an NCHW ``like`` gets one relaid copy, so the next convolution gets what it expects.
    """
    b, _, h, w = like.shape
    out = full_attention(as_sequence(q), as_sequence(k), as_sequence(v), scale, impl)
    out = out.transpose(1, 2).view(b, -1, h, w)  # (a view that an ONNX trace keeps free of shape arithmetic)
    return out if is_channels_last(like) else out.contiguous()


def attend_channels(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weights (B, C, C) @ x`` over channels (DANet's CAM), as ``(B, C, H, W)`` in x's layout."""
    b, c, h, w = x.shape
    f = x.flatten(2)
    if is_channels_last(x):
        return torch.bmm(f.transpose(1, 2), weights.transpose(1, 2)).transpose(1, 2).view(b, c, h, w)
    return torch.bmm(weights, f).view(b, c, h, w)
