"""``tools/convert_checkpoint.py``'s work: another project's checkpoint -> an ordinary segattn checkpoint.

The result holds ``model`` (every weight of the config's model), ``config``
(the config it was converted for), ``iteration`` 0 and ``source`` (format,
address, the source's own ``meta`` where it is plain data), so
``tools/eval.py``, ``infer.py``, ``visualize_attention.py`` and fine-tuning
(``model.init_from=``) read it like one of ours. It is written atomically and
only after every key has been mapped and loaded.
"""
import os

from omegaconf import OmegaConf

from ..engine.checkpoint import load_model_weights, non_finite, save_atomic
from ..errors import CheckpointError, ConfigError, OutputError
from ..models import build_model
from ..weights import Unread
from .foreign import fetch, forget_download, read_checkpoint
from .mmseg import convert_state_dict, mmseg_state_dict

FORMATS = {"mmseg": mmseg_state_dict}


def _plain(value):
    """``value`` without the placeholders of classes that were not loaded (meta is kept for the record only)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, Unread)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if not isinstance(v, Unread)]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def convert_checkpoint(fmt: str, source: str, cfg, output: str, config: str = "the config", progress: bool = True):
    """Convert ``source`` (file or http(s) address) in format ``fmt`` for the loaded config ``cfg`` (read from the
    file ``config``, named in messages); returns ``cfg``."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown source format {fmt!r}; known: {', '.join(FORMATS)}")
    if os.path.isdir(output):  # before any download or conversion
        raise OutputError(f"--output {output!r} is a folder; give the checkpoint's file name")
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["encoder"]["weights"] = None  # every weight comes from the checkpoint
    model_cfg["init_from"] = None
    model = build_model(model_cfg, config)
    path = fetch(source, progress)
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:  # a garbage download must not stay in the cache and be reused on every try
        if path == source:
            raise
        raise CheckpointError(f"{source}: the download is {str(err).split(': ', 1)[-1]}"
                              f"{forget_download(source, path)}") from None
    state = convert_state_dict(FORMATS[fmt](ckpt, source), model, source, config)
    broken = non_finite(state)
    if broken:  # nothing is written: a model of NaN predicts one class everywhere, without a word
        raise CheckpointError(f"{source}: {len(broken)} weight tensors hold NaN or infinity (e.g. {broken[0]}); "
                              "not converted")
    load_model_weights(model, state, source)  # the same strict load eval and infer do
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    save_atomic({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True), "iteration": 0,
                 "metrics": {}, "source": {"format": fmt, "address": source, "meta": _plain(meta or {})}}, output)
    return cfg
