"""``tu-resnet18c`` and ``tu-resnet34c``: mmsegmentation's ResNetV1c-18/34, layer for layer, as timm models.

timm has the V1c deep stem (three 3x3 convolutions, 32-32-64) for ResNet-50
and deeper only. The two small ones are registered here with the same stem
and basic blocks; when dilated (output stride 8 or 16) their blocks follow
mmsegmentation's ``BasicBlock``: the first 3x3 convolution carries the
dilation (halved on a stage's first block, its ``contract_dilation``) and the
second is not dilated, where timm would dilate both. No ImageNet weights
exist for them: they are for training from scratch (the mmsegmentation
comparison in benchmarks/) or for an mmsegmentation checkpoint of that depth.

``tu-resnet10c_narrow`` is the same design cut to one block per stage and a
quarter of the width or less (stem 8-8-16, stages 16-32-64-64): the context
probe's encoder (:mod:`segattn.data.context_probe`), small enough that a probe
run trains in under two minutes on two CPU cores, with a receptive field (about
100 pixels either side at output stride 8, almost all of its gradient within
80) that the probe's images leave room beyond.
"""
import timm
from timm.models import register_model
from timm.models.resnet import BasicBlock, _create_resnet

LAYERS = {"resnet18c": (2, 2, 2, 2), "resnet34c": (3, 4, 6, 3), "resnet10c_narrow": (1, 1, 1, 1)}
WIDTHS = {"resnet10c_narrow": dict(stem_width=8, channels=(16, 32, 64, 64))}  # else timm's 64-128-256-512


def undilate_second_convs(model):
    """mmsegmentation's dilated BasicBlock: ``conv2`` back to dilation 1 (``conv1`` already has timm's first
    dilation, which is mmsegmentation's contracted one)."""
    for module in model.modules():
        if isinstance(module, BasicBlock) and module.conv2.dilation != (1, 1):
            module.conv2.dilation, module.conv2.padding = (1, 1), (1, 1)
    return model


def _make(name):
    def create(pretrained: bool = False, **kwargs):
        args = dict(dict(block=BasicBlock, layers=LAYERS[name], stem_width=32, stem_type="deep"), **WIDTHS.get(name, {}))
        if kwargs.get("pretrained_cfg") is None:  # no weights to name; a config keeps timm from warning
            kwargs["pretrained_cfg"] = {"architecture": name, "num_classes": 1000}
        return undilate_second_convs(_create_resnet(name, pretrained, **dict(args, **kwargs)))
    create.__name__ = name
    create.__doc__ = f"mmsegmentation's ResNetV1c design, {name} (deep stem, its dilated basic blocks)."
    return create


for _name in LAYERS:
    if _name not in timm.list_models(_name):
        register_model(_make(_name))
