"""Checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of plain types and tensors: ``model``, ``optimizer``,
``scheduler``, ``scaler`` state dicts, ``iteration``, ``config`` (a plain
dict), ``metrics`` and ``rng`` states, and ``payload_digest``: a SHA-256 of
everything else in the file (every tensor, number, string and key), checked on
reading, so a damaged file is refused instead of loading other weights, another
optimiser state or another config (files of earlier versions carry ``digest``,
of the model's tensors alone, and are checked against that). Weights that are
not finite are refused too. Writing goes to a temporary file in the same
folder, is fsynced, then renamed over the target, so a kill mid-write leaves
the previous checkpoint intact.
"""
import hashlib
import glob
import logging
import os
import tempfile

import numpy as np
import torch

from ..data.io import current_umask
from ..errors import CheckpointError, MissingFileError, first_line
from ..weights import describe_fit, fit_report, read_weights

log = logging.getLogger("segattn")


TMP_PREFIX = ".tmp-"


def remove_stale_temporaries(folder: str) -> list:
    """Delete what a write killed mid-way left in ``folder`` (``.tmp-*.pth``); returns the paths removed.

    Only one process writes checkpoints into a run folder, and only while it
    runs, so at start-up every temporary there is stale.
    """
    stale = glob.glob(os.path.join(glob.escape(folder), TMP_PREFIX + "*.pth"))
    for path in stale:
        os.unlink(path)
    return stale


def tensor_digest(state: dict) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            continue
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def payload_digest(obj) -> str:
    """SHA-256 over a checkpoint's whole contents: tensors (dtype, shape, bytes), arrays, numbers, strings, and the
    structure holding them (mapping keys in a fixed order), so any flipped byte of what loads changes it."""
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(x, np.ndarray):
            h.update(f"A|{x.dtype}|{x.shape}|".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif isinstance(x, dict):
            h.update(f"D|{len(x)}|".encode())
            for key in sorted(x, key=repr):
                feed(key)
                feed(x[key])
        elif isinstance(x, (list, tuple)):
            h.update(f"L|{len(x)}|".encode())
            for item in x:
                feed(item)
        else:
            h.update(f"{type(x).__name__}|{x!r}|".encode())

    feed(obj)
    return h.hexdigest()


def non_finite(state: dict) -> list:
    """The floating-point tensors of a state dict holding NaN or infinity."""
    return [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


RESUME_STATE = ("optimizer", "scheduler", "scaler", "rng", "rng_ranks", "nonfinite_steps")  # beyond the weights


def weights_only(state: dict) -> dict:
    """What ``best.pth`` holds: the weights a user deploys, with the config, iteration and metrics that describe
    them, and none of the resume state (the optimiser's momentum alone is as large as the weights)."""
    return {k: v for k, v in state.items() if k not in RESUME_STATE}


def require_resume_state(ckpt: dict, path: str):
    """CheckpointError where ``ckpt`` cannot continue a run: it holds the weights only."""
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{path}: holds the weights only (as best.pth does), not the optimiser state a resume "
                              "continues; resume from the run's last.pth, or start a new run from these weights with "
                              f"model.init_from={path}")


def save_atomic(obj: dict, path: str):
    """Write ``obj`` to ``path`` atomically; a checkpoint (a dict with ``model``) gets its ``digest``."""
    if isinstance(obj.get("model"), dict):
        obj = {k: v for k, v in obj.items() if k not in ("digest", "payload_digest")}
        obj["payload_digest"] = payload_digest(obj)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".pth", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_failure(err: Exception, path: str) -> str:
    """Why a checkpoint write failed and what is left at ``path``, for the one line that says so (torch's zip
    writer wraps a full disk's OSError in a RuntimeError: the OSError's reason is given)."""
    inner = err.__cause__ or err.__context__
    cause = inner if not isinstance(err, OSError) and isinstance(inner, OSError) else err
    reason = getattr(cause, "strerror", None) or first_line(cause, 160)
    name = os.path.basename(path)
    kept = (f"the previous {name} is kept" if os.path.isfile(path)
            else f"no {name} exists" if not os.path.exists(path) else "it is not a file")
    return f"({reason}); {kept}"


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    ckpt = read_weights(path)  # truncated file, pickle with code, not a torch file: one line each
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: no 'model' state dict in this file")
    if "payload_digest" in ckpt:
        written = ckpt.pop("payload_digest")
        if written != payload_digest(ckpt):
            raise CheckpointError(f"{path}: the contents differ from those written (checksum mismatch over the "
                                  "weights, optimiser state and config): the file is damaged; use another copy or "
                                  "checkpoint")
    elif "digest" in ckpt and ckpt["digest"] != tensor_digest(ckpt["model"]):
        raise CheckpointError(f"{path}: the weights differ from those written (checksum mismatch): the file is "
                              "damaged; use another copy or checkpoint")
    broken = non_finite(ckpt["model"])
    if broken:
        raise CheckpointError(f"{path}: {len(broken)} weight tensors hold NaN or infinity (e.g. {broken[0]}); "
                              "predictions from them would be meaningless")
    return ckpt


def upgrade_state_dict(model: torch.nn.Module, state: dict) -> dict:
    """Rename keys a module has renamed since the checkpoint was written (its ``legacy_keys``)."""
    for prefix, module in model.named_modules():
        renames = getattr(type(module), "legacy_keys", None)
        if not renames:
            continue
        base = f"{prefix}." if prefix else ""
        for old, new in renames.items():
            for key in [k for k in state if k.startswith(base + old)]:
                state[base + new + key[len(base + old):]] = state.pop(key)
    return state


def load_model_weights(model: torch.nn.Module, state: dict, path: str = "checkpoint"):
    """Strict load with one clear error listing missing / unexpected / mis-shaped keys."""
    state = upgrade_state_dict(model, dict(state))
    missing, unexpected, shapes = fit_report(state, model.state_dict())
    if missing or unexpected or shapes:
        raise CheckpointError(f"{path}: does not fit this model (another head or class count?): "
                              + describe_fit(missing, unexpected, shapes))
    model.load_state_dict(state)


def init_from(model: torch.nn.Module, path: str, key: str = "model.init_from") -> list:
    """Start from another run's weights (fine-tuning): every key must fit, except a classifier of another size.

    The classifiers (``cls_seg`` / ``cls_pam`` / ``cls_cam``) of a checkpoint
    with another class count keep their fresh initialisation, with a warning:
    that is fine-tuning to a new label set. Anything else that does not fit
    is one error naming the keys. Returns the keys left at initialisation.
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"{key}: no such checkpoint {path!r}")
    state = upgrade_state_dict(model, dict(load_checkpoint(path)["model"]))
    own = model.state_dict()
    fresh = [k for k in own if k in state and state[k].shape != own[k].shape and ".cls_" in f".{k}"]
    for k in fresh:
        del state[k]
    load_model_weights(model, {**state, **{k: own[k] for k in fresh}}, f"{key}={path}")
    if fresh:
        log.warning("%s=%s: %d classifier tensors have another class count and start fresh: %s", key, path,
                    len(fresh), ", ".join(fresh))
    log.info("initialised from %s", path)
    return fresh


def newest_valid_checkpoint(folder: str) -> str:
    """The most recently written checkpoint in ``folder`` that loads and can continue a run; skips damaged files
    and weights-only ones (best.pth)."""
    candidates = sorted(glob.glob(os.path.join(folder, "*.pth")), key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            ckpt = load_checkpoint(path)
        except Exception as err:  # damaged or foreign file: say so and try the next
            log.warning("skipping %s: %s", path, err)
            continue
        if "optimizer" in ckpt:
            return path
    raise MissingFileError(f"--resume: no readable checkpoint in {folder!r}; train without --resume to start")
