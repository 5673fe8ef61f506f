"""Reading another project's checkpoint: from a local file or an http(s) address, never running its pickled code.

Checkpoints written by training frameworks carry more than weights: mmengine's
runner pickles its ``message_hub`` (``HistoryBuffer`` objects, NumPy arrays)
next to the ``state_dict``. ``torch.load(weights_only=True)`` refuses those
classes; :func:`read_checkpoint` loads them as inert :class:`Unread`
placeholders instead (their constructors never run), so the weights come out
while nothing in the file executes.
"""
import os
import urllib.parse

import torch

from ..errors import CheckpointError, MissingFileError


class Unread:
    """Stands in for an object of a class we do not load (its name in ``qualname``); holds nothing."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self):
        return f"<unread {self.qualname}>"


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def fetch(source: str, progress: bool = True) -> str:
    """A local path for ``source``: the file itself, or an address downloaded once into torch.hub's cache.

    The download goes to a temporary file that is renamed into place when
    complete (``torch.hub.download_url_to_file``), so an interrupted one
    leaves nothing that looks finished.
    """
    if not is_url(source):
        if not os.path.isfile(source):
            raise MissingFileError(f"{source}: no such checkpoint file")
        return source
    name = os.path.basename(urllib.parse.urlparse(source).path) or "checkpoint.pth"
    path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        torch.hub.download_url_to_file(source, path, progress=progress)
    except Exception as err:  # URLError, HTTPError, timeouts, refused connections
        reason = getattr(err, "reason", None) or err
        raise MissingFileError(f"{source}: could not download ({type(err).__name__}: {reason}); download it by "
                               "hand and pass the local file") from None
    return path


def _placeholder(qualname: str):
    return type("Unread", (Unread,), {"qualname": qualname}), qualname


def read_checkpoint(path: str):
    """``torch.load(path, weights_only=True)``, with every non-torch class in the file read as :class:`Unread`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - sorted below into "foreign classes" and "not a checkpoint"
        first = _first_line(err)
        if "Unsupported global" not in str(err) and "weights_only" not in first.lower():
            raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        with torch.serialization.safe_globals([_placeholder(name) for name in names]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0].split(". ")[0] if text else type(err).__name__)[:160]
