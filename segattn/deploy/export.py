"""Export a segmentor to ONNX: uint8 RGB images in, class logits and labels at the input size out.

The graph holds what ``tools/infer.py`` does around the network for one
image: ImageNet normalisation, the resize to the config's first eval scale
(``eval.scales[0]``, whole image), the network, the bilinear resize of
the logits back to the input size and their argmax. So a runtime feeds
``image`` uint8 ``(B, H, W, 3)`` RGB, as decoded, and gets ``logits`` float32
``(B, K, H, W)`` and ``labels`` ``(B, H, W)``, the train ids (uint8 up to 256
classes, else int32): a runtime asked for the labels alone hands back a byte a
pixel instead of K floats, and runs the argmax in its own threads. The
criss-cross op exports as its reference (matmul, where, softmax, concat: no
einsum, no diagonal op); opset 17. With ``dynamic``, batch, height and width
are free.
"""
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from ..data.io import output_file
from ..data.transforms import MEAN_255, STD_255
from ..errors import ConfigError
from ..registry import parse_spec

OPSET = 17
# The operators an exported graph may use: each one TensorRT 10's ONNX parser supports (onnx-tensorrt's
# docs/operators.md; LayerNormalization from TensorRT 8.6), so an export runs in every runtime a user deploys to.
# A head that needs more names them in its ``onnx_operators``; the export tests hold every head to its set.
PORTABLE_OPERATORS = frozenset({
    "Add", "ArgMax", "Cast", "Concat", "Constant", "Conv", "Div", "Equal", "Floor", "Gather", "Identity", "MatMul",
    "MaxPool", "Mul", "Range", "ReduceMax", "Relu", "Reshape", "Resize", "Shape", "Slice", "Softmax", "Sub",
    "Transpose", "Unsqueeze", "Where",
    # and those the attention blocks add
    "BatchNormalization", "LayerNormalization", "ReduceMean", "Sigmoid", "Split", "Sqrt", "Squeeze"})


class ImageToLogits(nn.Module):
    """``image (B, H, W, 3) uint8 -> logits (B, K, H, W), labels (B, H, W)``: normalise, resize by ``scale``,
    segment, resize back, argmax (the first of equal logits, as torch and numpy take)."""

    def __init__(self, model: nn.Module, scale: float = 1.0, num_classes: int = 256):
        super().__init__()
        self.model = model.eval()
        self.scale = scale
        self.labels_dtype = labels_dtype(num_classes)  # fixed before tracing: the trace takes no shape-made type
        self.register_buffer("mean", torch.tensor(MEAN_255).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD_255).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        size = x.shape[-2:]
        if self.scale != 1.0:  # floor(side * scale), sampled by size, as the PyTorch inference path does
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False,
                              recompute_scale_factor=True)
        logits = F.interpolate(self.model(x)["main"], size=size, mode="bilinear", align_corners=False)
        # the argmax over the last axis of a channels-last view: OpenVINO holds the logits channels-last and
        # takes it there in a fraction of the time it takes over axis 1 (and writes no logits when not asked)
        return logits, logits.permute(0, 2, 3, 1).argmax(-1).to(self.labels_dtype)


def labels_dtype(num_classes: int) -> torch.dtype:
    """The labels output's type: a byte where the train ids fit in one (what _pred.png stores)."""
    return torch.uint8 if num_classes <= 256 else torch.int32


def export_onnx(model: nn.Module, cfg, path: str, height: int, width: int, dynamic: bool = False) -> dict:
    """Write ``path``; returns the metadata stored in the file (config scale, classes, static size)."""
    if cfg.eval.mode != "whole" or len(cfg.eval.scales) > 1 or cfg.eval.flip:
        raise ConfigError("export: the ONNX model runs one whole-image pass at eval.scales[0]; this config asks "
                          f"for eval.mode={cfg.eval.mode}, scales={list(cfg.eval.scales)}, flip={cfg.eval.flip}: "
                          "override them, e.g. eval.mode=whole eval.scales=[1.0] eval.flip=false")
    if cfg.data.test_resize:
        raise ConfigError(f"export: data.test_resize={list(cfg.data.test_resize)} rescales each image to a size "
                          "computed from its own; the ONNX model takes images as given: add data.test_resize=null "
                          "(and resize before feeding it)")
    for name, module in model.named_modules():  # a block ONNX cannot express says so (its onnx_refusal)
        reason = getattr(type(module), "onnx_refusal", None)
        if reason:
            raise ConfigError(f"export: {name} ({type(module).__name__}) {reason}")
    wrapper = ImageToLogits(model.cpu(), float(cfg.eval.scales[0]), int(cfg.model.num_classes)).eval()
    example = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    axes = {"image": {0: "batch", 1: "height", 2: "width"}, "logits": {0: "batch", 2: "height", 3: "width"},
            "labels": {0: "batch", 1: "height", 2: "width"}}
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), path, input_names=["image"], output_names=["logits", "labels"],
                          opset_version=OPSET, dynamic_axes=axes if dynamic else None, dynamo=False)
    graph = onnx.load(path)
    meta = {"segattn.head": parse_spec(cfg.model.head, "model.head")[0], "segattn.num_classes": str(cfg.model.num_classes),
            "segattn.scale": str(float(cfg.eval.scales[0])),
            "segattn.input": "dynamic" if dynamic else f"{height}x{width}"}
    set_metadata(graph, meta)
    onnx.checker.check_model(graph, full_check=True)
    with output_file(path) as tmp:
        onnx.save(graph, tmp)
    return meta


def set_metadata(model, meta: dict):
    """Make ``meta`` the model's metadata properties (what the runtimes read back as ``segattn.*``)."""
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def graph_operators(path: str) -> set:
    """The ONNX operator types of a saved model (for the supported-operator checks)."""
    return {node.op_type for node in onnx.load(path).graph.node}


def allowed_operators(head_cls) -> frozenset:
    """What an export of a model with this head may use: the portable set and the head's ``onnx_operators``."""
    return PORTABLE_OPERATORS | head_cls.onnx_operators
