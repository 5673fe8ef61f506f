"""Reading weights files, and saying how a state dict fits a model: the one place for both.

:func:`read_weights` is the only ``torch.load`` of the package's readers: always
``weights_only=True``, so pickled code in a file never runs. A file that asks
for a class torch does not load either is refused naming the global it wanted
(``foreign=False``, our own checkpoints and weight files), or has those objects
read as inert :class:`Unread` placeholders (``foreign=True``: other projects'
checkpoints, where mmengine's runner pickles a ``message_hub`` of
``HistoryBuffer`` objects and NumPy arrays next to the ``state_dict``; their
constructors never run). ``.safetensors`` files are read with safetensors.

:func:`fit_report` and :func:`describe_fit` are the one missing / unexpected /
mis-shaped report every loader gives.
"""
import os
import re

import torch

from .errors import CheckpointError, MissingFileError


class Unread:
    """Stands in for an object of a class we do not load (its name in ``qualname``); holds nothing."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return f"<unread {self.qualname}>"


def _placeholder(qualname: str):
    return type("Unread", (Unread,), {"qualname": qualname}), qualname


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0].split(". ")[0] if text else type(err).__name__)[:160]


def read_weights(path: str, foreign: bool = False, what: str = None):
    """The object a weights file holds (a checkpoint dict or a state dict), never running pickled code.

    ``what`` names the file in errors (default its path); a missing file is a
    MissingFileError, an unreadable one a CheckpointError, each one line.
    """
    what = what or path
    if not os.path.isfile(path):
        raise MissingFileError(f"{what}: no such file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file, said in one line
            raise CheckpointError(f"{what}: not a readable safetensors file ({_first_line(err)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - sorted below: a foreign class, pickled code, or not a checkpoint
        wanted = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not foreign or not wanted:
            if wanted:
                raise CheckpointError(f"{what}: holds pickled code, which is not executed (it asks for the global "
                                      f"{wanted.group(1)}); load only plain weights: tensors, numbers and dicts"
                                      ) from None
            raise CheckpointError(f"{what}: not a readable checkpoint ({_first_line(err)})") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        with torch.serialization.safe_globals([_placeholder(name) for name in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{what}: not a readable checkpoint ({_first_line(err)})") from None


def fit_report(state: dict, own: dict, ignore_unexpected=()):
    """``(missing, unexpected, shapes)``: keys of ``own`` absent from ``state``, keys of ``state`` absent from
    ``own`` (but those starting with ``ignore_unexpected``), and ``"key (file shape) vs (model shape)"`` lines."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(tuple(ignore_unexpected))]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    return missing, unexpected, shapes


FILE_VS_MODEL = ("shape mismatches (file vs model)", "missing keys", "unexpected keys")


def describe_fit(missing, unexpected, shapes, words=FILE_VS_MODEL, examples: int = 3) -> str:
    """One line: each non-empty list counted, with its first ``examples``; ``words`` name the three lists."""
    parts = [f"{len(items)} {word}, e.g. {', '.join(map(str, items[:examples]))}"
             for items, word in zip((shapes, missing, unexpected), words) if items]
    return "; ".join(parts)


def sha256_of(path: str) -> str:
    """The hex sha256 of a file's bytes (mmsegmentation names released weights by its first 8 digits)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
