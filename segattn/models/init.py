"""The heads' initialisation: PyTorch's defaults, or mmsegmentation's (``model.init``).

Encoders initialise as timm does, which for the ResNets is mmsegmentation's
own (He normal, fan-out, for convolutions; norms 1 and 0; the last norm of each
residual block 0). The heads differ: PyTorch's default draws every convolution
uniform with a small fan-in bound, where mmsegmentation's ``ConvModule`` draws
He normal (fan-out, ReLU) with a zero bias, its ``conv_seg`` classifiers
N(0, 0.01) with a zero bias, and its ``NonLocal2d`` N(0, 0.01) for theta, phi
and g. Trained from scratch, or with only an ImageNet encoder, the heads start
where mmsegmentation's start with ``model.init: mmseg``; a head whose layers
mmsegmentation initialises otherwise says so in its ``mmseg_init`` (Non-local; the
base class's does nothing).
The attention projections of CCNet and DANet stay at PyTorch's default, as
mmsegmentation leaves them.
"""
from torch import nn

from .layers import ConvNorm, ConvNormReLU

def he_fan_out(conv: nn.Conv2d):
    """mmcv's ``kaiming_init`` as ``ConvModule`` calls it: normal, fan-out, ReLU gain, bias 0."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def small_normal(conv: nn.Conv2d, std: float = 0.01):
    """mmcv's ``normal_init``: N(0, std), bias 0."""
    nn.init.normal_(conv.weight, 0.0, std)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_heads_like_mmseg(model):
    """Every conv-norm-ReLU and conv-norm of the heads He fan-out (mmcv's ``ConvModule``; a conv-norm-ReLU's norm
    1 and 0, a conv-norm's left as its block set it: Non-local's starts at 0), each main classifier N(0, 0.01),
    then each head's own rules."""
    for head in (model.head, model.aux_head):
        if head is None:
            continue
        for module in head.modules():
            if isinstance(module, ConvNormReLU):
                he_fan_out(module[0])
                nn.init.ones_(module[1].weight)
                nn.init.zeros_(module[1].bias)
            elif isinstance(module, ConvNorm):
                he_fan_out(module[0])
        small_normal(head.cls_seg[1])
        head.mmseg_init()
    return model
