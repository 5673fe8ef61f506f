"""A folder of images as one job that many processes share, and that a re-run resumes.

Under ``torchrun`` (any number of processes and nodes: its ``RANK`` and
``WORLD_SIZE``) each process takes every ``WORLD_SIZE``-th image of the sorted
list, from its ``RANK`` on: the shares are disjoint, so no two processes write
one file, and each output is written once, atomically
(:func:`segattn.data.io.output_file`: a killed write leaves no half-file under
the final name).

An image's ``_pred.png`` is written last and carries a stamp in a PNG text
chunk (``segattn-made-by``): a digest of the weights and one of the settings
that decide its labels (the model section, the test resize, ``eval``). A run
skips an image whose three outputs exist under the current stamp, so a run
killed in any process, or stopped under another checkpoint, resumes without
redoing finished images and without trusting another model's. The stamp is
per image, not per folder, because a folder may hold both. ``manifest.json``
beside the outputs (rank 0's) names the weights, their digest and the settings
of the latest run.
"""
import datetime
import hashlib
import json
import os

import torch
from omegaconf import OmegaConf

from ..data.io import output_file, png_text
from ..errors import ConfigError

STAMP_KEY = "segattn-made-by"


def process_share() -> tuple:
    """``(rank, world_size)`` from torchrun's environment; ``(0, 1)`` outside it."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world}): run under torchrun, or unset "
                          "RANK and WORLD_SIZE")
    return rank, world


def process_device(device):
    """Under torchrun on CUDA, this process's GPU (``LOCAL_RANK``); ``device`` otherwise."""
    if torch.device(device).type == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def share(images: list, rank: int, world: int) -> list:
    """This process's images: every ``world``-th of the sorted list from ``rank`` on."""
    return sorted(images)[rank::world]


def weights_digest(model) -> str:
    """sha256 of the weights: an exported model's file, or a module's state dict (keys, dtypes, shapes, bytes), so a
    checkpoint and a published copy of the same weights share it."""
    h = hashlib.sha256()
    path = getattr(model, "path", None)
    if path and not isinstance(model, torch.nn.Module):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for key, value in sorted(model.state_dict().items()):
        value = value.detach().cpu().contiguous()
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return h.hexdigest()


def settings_digest(cfg) -> str:
    """sha256 of what decides a prediction besides the weights: the model section, the test resize and ``eval``."""
    settings = {"model": OmegaConf.to_container(cfg.model, resolve=True),
                "test_resize": OmegaConf.to_container(cfg.data, resolve=True).get("test_resize"),
                "eval": OmegaConf.to_container(cfg.eval, resolve=True)}
    for key in ("channels_last", "compile"):  # a memory layout, compiled or not: the same labels
        settings["eval"].pop(key, None)
    settings["model"]["encoder"].pop("weights", None)  # where ImageNet weights came from: the checkpoint has them all
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def stamp(model, cfg) -> str:
    """What an image's ``_pred.png`` carries: ``weights:<16 hex> settings:<16 hex>``."""
    return f"weights:{weights_digest(model)[:16]} settings:{settings_digest(cfg)[:16]}"


def already_done(base: str, current: str, suffixes) -> bool:
    """Whether the outputs of ``base`` exist and its ``_pred.png`` (written last) carries ``current``."""
    return (all(os.path.isfile(base + s) for s in suffixes)
            and png_text(base + "_pred.png").get(STAMP_KEY) == current)


def remove_leftovers(base: str, suffixes):
    """Temporary files of ``base``'s outputs that a killed write left (``.<name>.XXXX<ext>``): this process owns
    the image, so no one else is writing them."""
    folder = os.path.dirname(base)
    names = [os.path.basename(base) + s for s in suffixes]
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return
    for entry in entries:
        if any(entry.startswith(f".{name}.") and entry.endswith(os.path.splitext(name)[1]) for name in names):
            os.unlink(os.path.join(folder, entry))


def write_manifest(output_dir: str, current: str, source: str, images: int, world: int):
    """``manifest.json``: the latest run's weights file, stamp, image count and process count."""
    manifest = {"weights": source, "made_by": current, "images": images, "processes": world,
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    with output_file(os.path.join(output_dir, "manifest.json")) as tmp, open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
