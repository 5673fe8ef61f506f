"""A config as the tools and the Python API take it: loaded, checked against the registries once, and compared.

:func:`load_tool_config` is ``load_config`` plus the checks that need the
package (the ``imports`` a config lists, then the names and options of ``model``
and ``data`` against what is registered); :func:`checkpoint_config` does the
same for the config a checkpoint holds. :func:`config_changes` and
:func:`describe_changes` compare two resolved configs (a resume, a checkpoint
loaded with another config); :data:`HARMLESS_CHANGES` are the keys a resume may
change and stay exact. Everything here sits below ``engine/``: the training
loop, the inference modules and every tool call it, and it calls nothing of
theirs.
"""
import importlib

from omegaconf import OmegaConf

from .config import TYPED_KEYS, Config, apply_overrides, config_from_dict, load_config, parse_overrides
from .errors import ConfigError


def load_tool_config(path: str, overrides=None, print_config: bool = False):
    """``load_config`` plus the names and options of ``model`` and ``data`` checked against the registries.

    ``print_config`` (a tool's ``--print-config``): print the resolved config as YAML and exit 0.
    """
    cfg = load_config(path, overrides)
    try:
        check_tool_config(cfg, path)
    except ConfigError as err:
        if overrides and str(err).startswith(f"{path}: "):
            try:  # the file alone passes: the mistake is in a key=value override
                check_tool_config(load_config(path), path)
            except ConfigError:
                raise err from None
            raise ConfigError(f"command line: {str(err)[len(path) + 2:]}") from None
        raise
    if print_config:
        print_resolved(cfg)
    return cfg


def checkpoint_config(ckpt: dict, path: str, overrides=(), overrides_source: str = "command line",
                      hint: str = "give its YAML as CONFIG"):
    """The config saved in checkpoint ``ckpt`` (read from ``path``), with overrides, checked as a tool's."""
    if not ckpt.get("config"):
        raise ConfigError(f"{path}: the checkpoint holds no config; {hint}")
    source = f"{path} (its saved config)"
    refuse_saved_imports(ckpt["config"], overrides, source)
    return check_tool_config(apply_overrides(config_from_dict(ckpt["config"], source), overrides, overrides_source),
                             source)


def refuse_saved_imports(saved: dict, overrides, source: str):
    """ConfigError where a config that came with weights (a checkpoint's, a pretrained folder's config.yaml)
    lists ``imports`` the user has not given: importing a module runs its code, so a downloaded file never does
    it by itself. The user says so with ``imports=[...]`` among the overrides (the command line, or
    ``overrides=`` in Python)."""
    listed = list((saved or {}).get("imports") or [])
    given = []
    for item in overrides or ():
        if str(item).split("=", 1)[0].strip() == "imports":
            given = list(OmegaConf.to_container(parse_overrides([item])).get("imports") or [])
    missing = [name for name in listed if name not in given]
    if missing:
        names = ",".join(listed)
        raise ConfigError(f"{source}: imports {missing} not imported: a config that came with weights runs no code "
                          f"unless you say so; if you trust it, add imports=[{names}] to the command line "
                          f"(in Python: overrides=['imports=[{names}]'])")


def print_resolved(cfg):
    """``--print-config``: the resolved config as YAML on stdout, then exit 0."""
    print(OmegaConf.to_yaml(cfg, resolve=True), end="")
    raise SystemExit(0)


def check_tool_config(cfg, source: str):
    """``imports`` imported, ``model`` and ``data`` checked against the registries, the image size limit set.

    Each section is checked once whatever the number of callers on a path (a tool, then the trainer or
    ``build_model``): the checks remember the contents they passed.
    """
    from .data import check_data_config
    from .data.io import set_max_pixels
    from .models import check_model_config

    import_modules(cfg.imports)
    check_model_config(cfg.model, source)
    check_data_config(cfg)
    set_max_pixels(cfg.data.max_pixels)  # every image a tool reads (infer.py's folder too)
    return cfg


def import_modules(names):
    """Import each module ``imports`` lists, so that what it registers is there; a ConfigError names a failure."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err}); it must be importable from here, e.g. on "
                              "PYTHONPATH or pip-installed") from None


# config keys that say where and how often to log, save or evaluate: a resume may change them and stay exact
HARMLESS_CHANGES = ("train.out_dir", "train.log_dir", "train.overwrite", "train.experiment", "train.val_interval",
                    "train.log_interval", "train.checkpoint_interval", "train.num_vis", "train.threads", "train.device",
                    "data.root", "data.workers", "data.max_bad_samples", "data.palette", "eval.")


def with_defaults(saved: dict) -> dict:
    """A checkpoint's config with the keys it predates at their defaults (an option added since is no change)."""
    def merge(base, over):
        if not (isinstance(base, dict) and isinstance(over, dict)):
            return over
        return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
    return merge(OmegaConf.to_container(OmegaConf.structured(Config)), saved)


def typed_as_mappings(tree: dict, prefix: str = "") -> dict:
    """``tree`` with each typed node given by name alone (``context_block: none``) written as ``{type: name}``: the
    two spellings of one choice, which a config loaded from a file and one built in memory may hold. ``prefix``:
    where ``tree`` sits in a whole config (``"model."`` for a model section)."""
    tree = dict(tree)
    for key in (k[len(prefix):] for k in TYPED_KEYS if k.startswith(prefix)):
        *parents, leaf = key.split(".")
        node = tree
        for name in parents:
            if not isinstance(node.get(name), dict):
                break
            node[name] = node = dict(node[name])
        else:
            if isinstance(node.get(leaf), str):
                node[leaf] = {"type": node[leaf]}
    return tree


def config_changes(old: dict, new: dict, prefix: str = "") -> dict:
    """``{dotted key: (old, new)}`` where two config trees differ (a key only one has counts as a change; a typed
    node's name alone and ``{type: name}`` are the same)."""
    return _changes(typed_as_mappings(old, prefix), typed_as_mappings(new, prefix), prefix)


def _changes(old: dict, new: dict, prefix: str) -> dict:
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out


def describe_changes(changes: dict, limit: int = 8) -> str:
    items = [f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()]
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
