"""mmsegmentation checkpoints -> segattn checkpoints, every key accounted for.

mmsegmentation's ``EncoderDecoder`` keeps ``backbone.*`` (ResNetV1c: ours is
timm's ``resnet50c`` / ``resnet101c``, the same layers under other names),
``decode_head.*`` and ``auxiliary_head.*``. Each head class says how its own
module names map (its ``mmseg_keys``: ``cca.`` -> ``attention.``, DAHead's
``pam_in_conv.`` -> ``conv_pam_in.`` ...); what every head shares is mapped
here: mmcv's ``ConvModule`` (``conv`` / ``bn`` children, ours a conv-norm-ReLU
sequence or a bare conv) and its ``Scale`` (``gamma.scale``, ours a
parameter ``gamma``). A source key left unused, one of our keys left
unfilled, or a shape that differs stops the conversion with one line naming
them: nothing is guessed and nothing is written.
"""
import re

import torch

from ..errors import CheckpointError
from ..weights import describe_fit
from ..models.encoders import mmcv_resnet_key
from ..models.heads.fcn import FCNHead
from ..models.registry import HEADS

# mmcv's ConvModule children and Scale -> the names ours may have, tried in order
SUFFIXES = ((re.compile(r"^(.*)\.conv\.(weight|bias)$"), (r"\1.0.\2", r"\1.\2")),
            (re.compile(r"^(.*)\.bn\.(\w+)$"), (r"\1.1.\2",)),
            (re.compile(r"^(.*)\.gamma\.scale$"), (r"\1.gamma",)))


# the three lists of describe_fit in a conversion's words: their keys are renamed to ours first
THEIRS_VS_OURS = ("shapes differ (theirs vs ours)", "of ours unfilled", "of its keys unused")


def _rename(key: str, renames: dict) -> str:
    for old, new in renames.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _target(key: str, model) -> str:
    """Our key for the mmseg key ``key``, before the ConvModule / Scale suffixes; None for a part we lack."""
    if key.startswith("backbone."):
        body = model.encoder.body
        prefix = "encoder.body.model." if hasattr(body, "model") else "encoder.body."
        return prefix + mmcv_resnet_key(key[len("backbone."):])
    if key.startswith("decode_head."):
        return "head." + _rename(key[len("decode_head."):], type(model.head).mmseg_keys)
    if key.startswith("auxiliary_head.") and model.aux_head is not None:
        return "aux_head." + _rename(key[len("auxiliary_head."):], type(model.aux_head).mmseg_keys)
    return None


def _resolve(name: str, own: dict) -> str:
    if name in own:
        return name
    for pattern, replacements in SUFFIXES:
        if pattern.match(name):
            for replacement in replacements:
                candidate = pattern.sub(replacement, name)
                if candidate in own:
                    return candidate
    return None


def source_head(keys) -> str:
    """The mmseg decode head a state dict was saved from: the registered head whose own modules it holds.

    A head's own modules are its ``mmseg_keys`` beyond FCN's; an FCN frame with
    none of them is mmseg's FCNHead.
    """
    shared = set(FCNHead.mmseg_keys)
    for name in HEADS.names():
        cls = HEADS.get(name)
        own = [prefix for prefix in cls.mmseg_keys if prefix not in shared]
        if own and any(k.startswith("decode_head." + prefix) for prefix in own for k in keys):
            return f"{cls.mmseg_type} ({name})"
    if any(k.startswith("decode_head.convs.") for k in keys):
        return f"{FCNHead.mmseg_type} (fcn)"
    return "unknown"


def convert_state_dict(state: dict, model: torch.nn.Module, source: str = "checkpoint",
                       target: str = "the config") -> dict:
    """mmseg ``state_dict`` -> ``model``'s state dict; CheckpointError naming every key that does not fit."""
    own = model.state_dict()
    out, unused, shapes, mismatched = {}, [], [], set()
    for key, value in state.items():
        name = _target(key, model)
        name = _resolve(name, own) if name else None
        if name is None or name in out:
            unused.append(key)
            continue
        if value.shape != own[name].shape:
            if value.numel() == own[name].numel() == 1:  # mmcv's Scale is 0-d, our gamma (1,)
                value = value.reshape(own[name].shape)
            else:
                shapes.append(f"{key} {tuple(value.shape)} vs {name} {tuple(own[name].shape)}")
                mismatched.add(name)
                continue
        out[name] = value.to(own[name].dtype)
    unfilled = [k for k in own if k not in out and k not in mismatched]
    if unused or unfilled or shapes:
        raise CheckpointError(f"{source}: does not fit the model of {target} (the checkpoint's head is "
                              f"{source_head(state)}): " + describe_fit(unfilled, unused, shapes, THEIRS_VS_OURS))
    return out


def mmseg_state_dict(ckpt, source: str) -> dict:
    """The weights of an mmseg checkpoint (``{"meta", "state_dict", ...}``, or a bare state dict)."""
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict) or not ckpt or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{source}: not an mmsegmentation checkpoint (no 'state_dict' of tensors)")
    if not any(k.startswith(("backbone.", "decode_head.")) for k in ckpt):
        raise CheckpointError(f"{source}: not an mmsegmentation EncoderDecoder checkpoint (no backbone. or "
                              f"decode_head. keys; e.g. {next(iter(ckpt))})")
    return ckpt

