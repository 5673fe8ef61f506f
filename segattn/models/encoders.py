"""Dilated ResNet encoders, built through segmentation-models-pytorch's factory.

``Encoder("resnet101", weights, output_stride=8)`` gives the dilated
ResNet of the DeepLab / PSPNet / CCNet / DANet line: strides of the last two
stages replaced by dilation 2 and 4 at output stride 8 (only the last stage,
dilation 2, at 16). Any timm encoder opens with a ``tu-`` prefix:
``tu-resnet101c`` is mmsegmentation's ResNetV1c layer for layer (deep stem of
three 3x3 convs 32-32-64, stride on the bottleneck's 3x3 conv, and the first
block of a dilated stage at half the stage's dilation), so its D8 models'
weights load as they are (``tu-resnet18c`` / ``tu-resnet34c``: its small
ones, :mod:`.small_v1c`); ``tu-resnet101s`` has the 64-64-128 stem of the
official CCNet and DANet code.

``forward`` returns ``(layer3, layer4)`` features: the auxiliary head reads the
first, the context head the second.
"""
import logging
import os

import torch
from torch import nn

from ..errors import ConfigError, MissingFileError
from ..weights import describe_fit, fit_report, read_weights
from .attention import create_attention, is_none
from .registry import OUTPUT_STRIDES

log = logging.getLogger(__name__)


def _looks_like_path(weights: str) -> bool:
    return os.sep in weights or weights.endswith((".pth", ".pt", ".bin", ".safetensors")) or os.path.exists(weights)


# mmcv / mmsegmentation ResNetV1c's deep stem -> timm's (``stem.7`` is the norm after the third conv)
MMCV_STEM = {"stem.0.": "conv1.0.", "stem.1.": "conv1.1.", "stem.3.": "conv1.3.", "stem.4.": "conv1.4.",
             "stem.6.": "conv1.6.", "stem.7.": "bn1."}


def mmcv_resnet_key(key: str) -> str:
    """An mmcv ResNet(V1c) key (``stem.0.weight``, ``layer1.0.conv1.weight``) -> timm's ResNet key."""
    for old, new in MMCV_STEM.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def load_state_dict_file(path: str) -> dict:
    """Read a state dict from ``.pth/.pt`` (weights only) or ``.safetensors``."""
    if not os.path.isfile(path):
        raise MissingFileError(f"model.encoder.weights: no such file {path!r}")
    state = read_weights(path, what=f"model.encoder.weights: {path!r}")
    for key in ("state_dict", "model"):  # common wrappers around a bare state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"model.encoder.weights: {path!r} does not hold a state dict")
    return state


def _resnet_stages(body):
    root = body if hasattr(body, "layer1") else getattr(body, "model", None)
    if root is None or not hasattr(root, "layer1"):
        raise ConfigError("model.encoder.block_attention works with ResNet-family encoders (layer1..layer4)")
    return [getattr(root, f"layer{i}") for i in range(1, 5)]


def insert_block_attention(body: nn.Module, spec, stages=(1, 2, 3, 4)):
    """Put an attention block on the residual branch of every block of ``stages``, before the addition.

    That is where SE, ECA and CBAM sit in their papers: after the block's last
    norm (``bn3`` of a bottleneck, ``bn2`` of a basic block), so the block
    reweights the residual and the identity path stays untouched. Done after
    pretrained weights are loaded.
    """
    layers = _resnet_stages(body)
    for stage in stages:
        if stage not in (1, 2, 3, 4):
            raise ConfigError(f"model.encoder.attention_stages: {stage} is not a stage 1..4")
        for block in layers[stage - 1]:
            attr = "bn3" if hasattr(block, "bn3") else "bn2"
            norm = getattr(block, attr)
            block_module = create_attention(spec, norm.num_features, "model.encoder.block_attention")
            setattr(block, attr, nn.Sequential(norm, block_module))


def _close_names(name: str, smp) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(smp.encoders.encoders), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _download_failed(name: str, weights: str, err: Exception) -> MissingFileError:
    """One line for pretrained weights that could not be fetched: what failed and the two ways round it."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE as cache
    except ImportError:  # pragma: no cover - smp depends on it
        cache = "the Hugging Face cache (HF_HOME)"
    reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return MissingFileError(
        f"model.encoder.weights={weights}: could not fetch the {weights} weights of {name!r} "
        f"({type(err).__name__}: {reason}); put them in {cache} by hand, or set model.encoder.weights=PATH to a "
        "local state dict (e.g. torchvision's ImageNet .pth), or model.encoder.weights=null to train from scratch")


class Encoder(nn.Module):
    """Wraps an smp encoder; exposes ``out_channels = (aux, head)``."""

    def __init__(self, name: str = "resnet101", weights=None, output_stride: int = 8, in_channels: int = 3,
                 block_attention: str = "none", attention_stages=(1, 2, 3, 4)):
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"model.encoder.output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        import segmentation_models_pytorch as smp

        from . import small_v1c  # noqa: F401  (registers tu-resnet18c / 34c / 10c_narrow with timm; imported here,
        # not at the top, so that the tools start without loading timm)
        hub_weights = weights if weights and not _looks_like_path(str(weights)) else None
        try:
            self.body = smp.encoders.get_encoder(name, in_channels=in_channels, depth=5, weights=hub_weights,
                                                 output_stride=output_stride)
        except (KeyError, RuntimeError) as err:
            if "unknown model" in str(err).lower() or "encoder name" in str(err).lower():
                raise ConfigError(f"model.encoder.name: unknown encoder {name!r}{_close_names(name, smp)}; use "
                                  "an smp encoder such as resnet50 / resnet101, or a timm one with the tu- prefix"
                                  ) from None
            if not hub_weights:
                raise
            raise _download_failed(name, hub_weights, err) from None
        except Exception as err:  # the hub client's network, cache and HTTP errors
            if not hub_weights:
                raise
            raise _download_failed(name, hub_weights, err) from None
        self.name = name
        self.output_stride = output_stride
        self.out_channels = tuple(self.body.out_channels[-2:])
        if weights and _looks_like_path(str(weights)):
            self.load_weights(str(weights))
        if not is_none(block_attention):
            insert_block_attention(self.body, block_attention, attention_stages)

    def load_weights(self, path: str):
        """Load a local state dict into the encoder, logging missing / unexpected keys."""
        state = load_state_dict_file(path)
        state = {k[len("body."):] if k.startswith("body.") else k: v for k, v in state.items()}
        own = self.body.state_dict()
        if all(k.startswith("model.") for k in own):  # a timm encoder: take timm's and mmcv's (V1c) key names
            state = {k if k.startswith("model.") else "model." + mmcv_resnet_key(k): v for k, v in state.items()}
        # smp encoders drop the classifier; fc.* in an ImageNet checkpoint is expected, not "unexpected"
        missing, unexpected, bad_shape = fit_report(state, own, ignore_unexpected=("fc.", "model.fc."))
        if bad_shape:
            raise ConfigError(f"model.encoder.weights: {path!r} does not fit {self.name!r}: "
                              + describe_fit([], [], bad_shape))
        if len(missing) == len(own):
            raise ConfigError(f"model.encoder.weights: no key of {path!r} matches encoder {self.name!r}")
        if missing:
            log.warning("encoder weights %s: %d missing keys, e.g. %s", path, len(missing), missing[:5])
        if unexpected:
            log.warning("encoder weights %s: %d unexpected keys, e.g. %s", path, len(unexpected), unexpected[:5])
        nn.Module.load_state_dict(self.body, {k: v for k, v in state.items() if k in own}, strict=False)
        return missing, unexpected

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        return features[-2], features[-1]
