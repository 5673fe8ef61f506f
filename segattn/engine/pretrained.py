"""Pretrained folders in the Hugging Face Hub layout: ``config.yaml``, the weights as safetensors, a model card.

:func:`write_folder` writes one (weights only: no optimizer, scheduler or RNG
state); :func:`read_folder` reads a local folder, or a Hub repo id through
``huggingface_hub``'s cache (online: downloaded; offline: only what the cache
holds). Weights named ``model-<sha256 prefix>.safetensors`` (what
``tools/publish.py`` writes, mmsegmentation's ``publish_model.py`` naming) are
checked against that prefix on reading.
"""
import glob
import os
import re

from omegaconf import OmegaConf

from ..data.io import output_file
from ..errors import CheckpointError, ConfigError, MissingFileError, MissingPackageError, OutputError, first_line
from ..weights import sha256_of
from .checkpoint import non_finite

WEIGHTS = "model.safetensors"
HASHED = re.compile(r"^model-([0-9a-f]{8,64})\.safetensors$")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def write_folder(folder: str, state: dict, config: dict, card: str, hashed: bool = False) -> str:
    """Write ``config.yaml``, the weights and ``README.md`` into ``folder``; returns the weights' path.

    ``hashed``: name the weights ``model-<first 8 hex of their sha256>.safetensors``. The folder must be new,
    empty, or an earlier publish of the same model (only the files a publish writes, its config's ``model``
    section the same): anything else is refused, never deleted or overwritten. Every file is written under a
    temporary name and takes its place when complete, and the earlier weights go only after the new ones are
    in place, so a full disk or a kill leaves the earlier publish as it was.
    """
    from safetensors.torch import save_file

    check_publish_folder(folder, config)
    os.makedirs(folder, exist_ok=True)
    earlier = set(glob.glob(os.path.join(folder, "model*.safetensors")))
    path = os.path.join(folder, WEIGHTS)
    with output_file(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp, metadata={"format": "pt"})
        digest = sha256_of(tmp)
    if hashed:
        named = os.path.join(folder, f"model-{digest[:8]}.safetensors")
        os.replace(path, named)
        path = named
    with output_file(os.path.join(folder, "config.yaml")) as tmp:
        OmegaConf.save(OmegaConf.create(config), tmp)
    with output_file(os.path.join(folder, "README.md")) as tmp, open(tmp, "w") as f:
        f.write(card)
    for old in earlier - {path}:  # one weights file per folder, once the new one is in place
        os.remove(old)
    return path


PUBLISHED = re.compile(r"^(config\.yaml|README\.md|model(-[0-9a-f]{8,64})?\.safetensors)$")


def check_publish_folder(folder: str, config: dict):
    """OutputError unless ``folder`` is absent, empty, or an earlier publish of the model ``config`` describes."""
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise OutputError(f"--output {folder}: a file, not a folder; give a folder for the pretrained model")
    names = sorted(os.listdir(folder))
    if not names:
        return
    foreign = [n for n in names if not PUBLISHED.match(n) or not os.path.isfile(os.path.join(folder, n))]
    if foreign:
        raise OutputError(f"--output {folder}: holds {foreign[0]!r}" + (f" and {len(foreign) - 1} more" if
                          len(foreign) > 1 else "") + ", which a publish does not write; give a new or empty "
                          "folder (nothing there is deleted or overwritten)")
    earlier = os.path.join(folder, "config.yaml")
    try:
        same = os.path.isfile(earlier) and \
            OmegaConf.to_container(OmegaConf.load(earlier), resolve=True).get("model") == config.get("model")
    except Exception:  # noqa: BLE001 - an unreadable config.yaml is not this model's
        same = False
    if not same:
        raise OutputError(f"--output {folder}: holds a pretrained folder of another model (its config.yaml's model "
                          "section differs, or is missing); give a new or empty folder")


def resolve_folder(name: str) -> str:
    """A local folder as it is; a Hub repo id (``user/name``) as the folder of its cached snapshot."""
    if os.path.isdir(name):
        return name
    if not HUB_ID.match(name) or os.path.exists(name):
        raise MissingFileError(f"{name}: not a folder (a pretrained folder holds config.yaml and "
                               f"{WEIGHTS}), nor a Hugging Face Hub repo id like user/name")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingPackageError(f"{name}: loading from the Hub needs huggingface_hub: pip install huggingface_hub") \
            from None
    try:
        return snapshot_download(name, allow_patterns=["config.yaml", "*.safetensors", "README.md"])
    except Exception as err:  # noqa: BLE001 - offline, no such repo, no access: one line either way
        first = first_line(err, 160)
        raise MissingFileError(f"{name}: not a local folder, and the Hugging Face Hub did not give it "
                               f"({type(err).__name__}: {first}); offline, only a repo already in the local cache "
                               "loads") from None


def read_folder(name: str):
    """``(state dict, config dict, weights path)`` of a pretrained folder or Hub repo id."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = resolve_folder(name)
    config_path = os.path.join(folder, "config.yaml")
    if not os.path.isfile(config_path):
        raise MissingFileError(f"{config_path}: not found; a pretrained folder holds config.yaml beside its weights")
    config = read_folder_config(config_path)
    weights = sorted(p for p in glob.glob(os.path.join(folder, "*.safetensors"))
                     if os.path.basename(p) == WEIGHTS or HASHED.match(os.path.basename(p)))
    if len(weights) != 1:
        found = ", ".join(os.path.basename(p) for p in weights) or "none"
        raise MissingFileError(f"{folder}: expected one {WEIGHTS} (or model-<sha256>.safetensors), found {found}")
    path = weights[0]
    hashed = HASHED.match(os.path.basename(path))
    if hashed and not sha256_of(path).startswith(hashed.group(1)):
        raise CheckpointError(f"{path}: the file's sha256 does not start with {hashed.group(1)} as its name says: "
                              "the file is damaged or was replaced; download it again")
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:120]})") from None
    broken = non_finite(state)
    if broken:
        raise CheckpointError(f"{path}: {len(broken)} weight tensors hold NaN or infinity (e.g. {broken[0]}); "
                              "predictions from them would be meaningless")
    return state, config, path


SECTIONS = ("model", "data", "eval")  # what predictions depend on: a folder's config.yaml must say each


def read_folder_config(path: str) -> dict:
    """A pretrained folder's ``config.yaml`` as a dict, with every section predictions depend on; ConfigError in one
    line for a file that is not YAML (or holds tags that would build objects), or that lacks a section (a file cut
    short, or a hand-made one): defaults would silently give other predictions."""
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # noqa: BLE001 - YAML syntax, a constructor tag, interpolation: one line each
        raise ConfigError(f"{path}: not a readable config ({type(err).__name__}: "
                          f"{first_line(err, 120)})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got {type(saved).__name__}")
    missing = [key for key in SECTIONS if not isinstance(saved.get(key), dict)]
    if missing:
        raise ConfigError(f"{path}: no {', '.join(missing)} section{'s' if len(missing) > 1 else ''}; a pretrained "
                          "folder's config.yaml holds the whole config its model was evaluated with (the file may "
                          "be cut short): write it again with save_pretrained or tools/publish.py, or load the "
                          "weights with a config of your own")
    return saved


__all__ = ["WEIGHTS", "read_folder", "resolve_folder", "write_folder"]
