"""Name -> class tables filled where each class is defined, as timm's and smp's factories.

A head or an attention block registers itself with a decorator::

    @HEADS.register("ccnet")
    class RCCAHead(FCNHead): ...

and a config names it with its own options, ``{"type": "ccnet", "recurrence": 2}``
(a bare ``"ccnet"`` means no options). The options are checked against the
class's signature, so a typo gets the closest valid option and an unknown name
the list of valid ones; a ``ValueError`` the constructor raises for a bad value
becomes a :class:`ConfigError` naming the config key.
"""
import difflib
import importlib
import inspect
import pkgutil
import sys
from typing import Any, Dict, Iterable, Tuple

from omegaconf import OmegaConf

from .errors import ConfigError


def running_module() -> str:
    """The module ``python -m`` runs in this process ('' if none): runpy imports its package first, and the
    package's registration loop must leave that module for runpy to run once, as ``__main__``."""
    argv = getattr(sys, "orig_argv", [])
    return next((name for flag, name in zip(argv, argv[1:]) if flag == "-m"), "")


def import_all(package: str, path) -> None:
    """Import every module of ``package`` (its ``__path__``), so what each defines registers itself; the module
    ``python -m`` is running is left to runpy (importing it here too would run it twice, with runpy's warning)."""
    skip = running_module()
    for module in pkgutil.iter_modules(path):
        name = f"{package}.{module.name}"
        if name != skip:
            importlib.import_module(name)


def parse_spec(spec: Any, key: str) -> Tuple[str, dict]:
    """``"ccnet"`` or ``{"type": "ccnet", **options}`` (a dict or an OmegaConf node) -> ``("ccnet", options)``."""
    if OmegaConf.is_config(spec):
        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, str):
        return spec, {}
    if hasattr(spec, "items"):
        options = dict(spec.items())
        if "type" not in options:
            raise ConfigError(f"{key}: a mapping needs a 'type' key, e.g. {{type: ccnet}}")
        return str(options.pop("type")), options
    raise ConfigError(f"{key}: expected a name or a mapping with 'type', got {type(spec).__name__}")


def suggest(word: str, valid: Iterable[str], prefix: str = "", listing: str = "valid") -> str:
    """``"; did you mean 'prefix+x'?"`` for a close match, else ``"; <listing>: <the valid words>"``."""
    valid = sorted(valid)
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.5)
    return f"; did you mean {prefix + close[0]!r}?" if close else f"; {listing}: {', '.join(valid) or '(none)'}"


class Registry:
    """A table of one kind of thing (``"head"``); ``reserved`` are the constructor arguments the builder fills."""

    def __init__(self, kind: str, reserved: Iterable[str] = ()):
        self.kind = kind
        self.reserved = frozenset(reserved)
        self._classes: Dict[str, type] = {}

    def register(self, name: str):
        def add(cls):
            known = self._classes.get(name)
            if known is not None and "__main__" in (cls.__module__, known.__module__) \
                    and known.__qualname__ == cls.__qualname__:
                # a module of the package run with ``python -m`` (as __main__) and imported by its name too defines
                # its classes twice: the package's own class stands
                if known.__module__ == "__main__":
                    self._classes[name] = cls
                return cls
            assert known is None, f"{self.kind} {name!r} registered twice"
            self._classes[name] = cls
            return cls
        return add

    def names(self):
        return list(self._classes)

    def __contains__(self, name) -> bool:
        return name in self._classes

    def __iter__(self):
        return iter(self._classes)

    def __getitem__(self, name: str) -> type:
        return self.get(name)

    def get(self, name: str, key: str = None) -> type:
        if name not in self._classes:
            raise ConfigError(f"{key or self.kind}: unknown {self.kind} {name!r}; valid: {', '.join(self._classes)}")
        return self._classes[name]

    def options(self, name: str) -> Dict[str, Any]:
        """The class's own options and their defaults (what a config may set)."""
        params = inspect.signature(self.get(name).__init__).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name: p.default for p in params
                if p.kind in kinds and p.name != "self" and p.name not in self.reserved}

    def check(self, spec: Any, key: str) -> Tuple[str, dict]:
        """Parse ``spec`` and check its options against the class; returns ``(name, options)``."""
        name, options = parse_spec(spec, key)
        self.get(name, f"{key}.type")
        valid = self.options(name)
        for option, value in options.items():
            if option not in valid:
                raise ConfigError(f"{key}: {self.kind} {name!r} has no option {option!r}"
                                  f"{suggest(option, valid)}")
            default = valid[option]
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ConfigError(f"{key}.{option}: expected true or false, got {value!r}")
            if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                    isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{key}.{option}: expected a number, got {value!r}")
        return name, options

    def build(self, spec: Any, key: str, *args, **kwargs):
        """Construct the named class with ``args``/``kwargs`` (the reserved ones) plus the spec's options."""
        name, options = self.check(spec, key)
        return self.create(name, options, key, *args, **kwargs)

    def create(self, name: str, options: dict, key: str, *args, **kwargs):
        """Construct ``name`` with options that :meth:`check` has passed (the builder checks a config once)."""
        try:
            return self._classes[name](*args, **kwargs, **options)
        except ConfigError:
            raise
        except ValueError as err:  # the constructor's own check of an option's value
            raise ConfigError(f"{key}: {err}") from None


# Decode heads, built as ``cls(in_channels, channels, num_classes, dropout=, norm=, **options)``; ``attention`` is
# the block factory an FCN-frame head hands to ``FCNHead`` (never a config option).
HEADS = Registry("head", reserved=("in_channels", "channels", "num_classes", "dropout", "norm", "attention"))
# Attention blocks, built as ``cls(channels, **options)``.
ATTENTION = Registry("attention block", reserved=("channels",))
