"""Reading another project's checkpoint: from a local file or an http(s) address, never running its pickled code.

Checkpoints written by training frameworks carry more than weights: mmengine's
runner pickles its ``message_hub`` (``HistoryBuffer`` objects, NumPy arrays)
next to the ``state_dict``. ``torch.load(weights_only=True)`` refuses those
classes; :func:`read_checkpoint` loads them as inert ``Unread``
placeholders instead (their constructors never run; :mod:`segattn.weights`
reads every weights file of the package), so the weights come out while
nothing in the file executes.
"""
import os
import re
import socket
import urllib.parse

import torch

from ..errors import CheckpointError, MissingFileError
from ..weights import read_weights, sha256_of


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


DOWNLOAD_TIMEOUT = 60  # seconds without an answer before a download is given up


HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth$")  # mmsegmentation's ..._20200616_142517-4123f401.pth


def hash_prefix(name: str):
    """The sha256 prefix a released checkpoint's file name ends with, or None."""
    match = HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def fetch(source: str, progress: bool = True, timeout: float = DOWNLOAD_TIMEOUT) -> str:
    """A local path for ``source``: the file itself, or an address downloaded once into torch.hub's cache.

    A file named as mmsegmentation names its releases (``...-<sha256 prefix>.pth``)
    is checked against that prefix, downloaded or found in the cache; a mismatch
    is one line and leaves nothing in the cache.

    The download goes to a temporary file that is renamed into place when
    complete (``torch.hub.download_url_to_file``), so an interrupted one
    leaves nothing that looks finished; a server that stops answering for
    ``timeout`` seconds fails it (the temporary removed) instead of hanging.
    """
    if not is_url(source):
        if not os.path.isfile(source):
            raise MissingFileError(f"{source}: no such checkpoint file")
        return source
    name = os.path.basename(urllib.parse.urlparse(source).path) or "checkpoint.pth"
    path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    prefix = hash_prefix(name)
    if os.path.isfile(path):
        if prefix and not sha256_of(path).startswith(prefix):
            os.remove(path)
            raise CheckpointError(f"{source}: the cached download {path} does not match the sha256 prefix {prefix} "
                                  "its name gives (damaged or replaced); it was removed: run again to download it")
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torch.hub opens the address with the default timeout
    try:
        torch.hub.download_url_to_file(source, path, hash_prefix=prefix, progress=progress)
    except Exception as err:  # URLError, HTTPError, timeouts, refused connections; torch.hub's hash check
        if prefix and isinstance(err, RuntimeError) and "invalid hash value" in str(err):
            raise CheckpointError(f"{source}: the download's sha256 does not start with {prefix} as its name says "
                                  "(a damaged or replaced file); nothing was written") from None
        reason = getattr(err, "reason", None) or err
        raise MissingFileError(f"{source}: could not download ({type(err).__name__}: {reason}); download it by "
                               "hand and pass the local file") from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def forget_download(source: str, path: str) -> str:
    """Remove a downloaded file that turned out unreadable, so the next try downloads it again; the sentence."""
    if is_url(source) and os.path.isfile(path):
        os.remove(path)
        return f"; the download was removed from the cache ({path}), so the next try fetches it again"
    return ""


def read_checkpoint(path: str):
    """Another project's checkpoint, its non-torch objects read as inert :class:`Unread` placeholders."""
    return read_weights(path, foreign=True)
