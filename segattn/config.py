"""Configuration: the schema, YAML loading, ``key=value`` overrides and validation.

The schema is a tree of dataclasses read by OmegaConf, so types are checked on
merge. On top of that every user mistake becomes a :class:`ConfigError`, one
line naming the file and the dotted key: unknown keys (with the closest valid
key suggested), wrong types and out-of-range values.
"""
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

HEADS = ("fcn", "danet", "ccnet", "nonlocal")


class ConfigError(ValueError):
    """A user-facing configuration mistake; the message is one line."""


@dataclass
class EncoderConfig:
    name: str = "resnet101"          # smp encoder name, or tu-<timm name>
    weights: Optional[str] = "imagenet"  # imagenet | path to a state dict | null
    output_stride: int = 8           # 8 (dilations 2, 4) or 16


@dataclass
class AuxConfig:
    enabled: bool = True             # FCN head on layer3 (PSPNet / CCNet / DANet recipes)
    channels: int = 256
    loss_weight: float = 0.4


@dataclass
class ModelConfig:
    head: str = "ccnet"              # fcn | danet | ccnet | nonlocal
    num_classes: int = 19
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    channels: int = 512              # inner width of every head
    dropout: float = 0.1
    norm: str = "bn"                 # bn | syncbn | gn
    recurrence: int = 2              # ccnet: criss-cross loops R
    reduction: int = 2               # nonlocal: inner channels = channels / reduction
    use_scale: bool = True           # nonlocal: divide energies by sqrt(inner channels)
    aux: AuxConfig = field(default_factory=AuxConfig)
    # extra heads' loss weights (DANet: pam, cam), as in the authors' multi-loss
    extra_loss_weights: Dict[str, float] = field(default_factory=lambda: {"pam": 1.0, "cam": 1.0})


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)


SCHEMAS = {"model": ModelConfig}


def _suggest(key: str, valid: List[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {prefix + close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(valid))}"


def _check_keys(node: Any, schema: Any, prefix: str, source: str):
    """Raise ConfigError for the first key in ``node`` that ``schema`` lacks."""
    if not isinstance(node, (dict, DictConfig)) or not isinstance(schema, DictConfig):
        return
    valid = [str(k) for k in schema.keys()]
    for key in node.keys():
        dotted = f"{prefix}{key}"
        if str(key) not in valid:
            raise ConfigError(f"{source}: unknown key {dotted!r}{_suggest(str(key), valid, prefix)}")
        child_schema = schema._get_node(key)
        if isinstance(child_schema, DictConfig) and child_schema._metadata.object_type not in (None, dict):
            _check_keys(node[key], child_schema, dotted + ".", source)


def _merge(schema_cls, user: Any, source: str, prefix: str = "") -> DictConfig:
    schema = OmegaConf.structured(schema_cls)
    _check_keys(user, schema, prefix, source)
    try:
        return OmegaConf.merge(schema, user)
    except OmegaConfBaseException as err:
        key = f"{prefix}{err.full_key}" if getattr(err, "full_key", None) else prefix.rstrip(".")
        msg = str(err).splitlines()[0]
        raise ConfigError(f"{source}: bad value for {key!r}: {msg}") from None


def _require(cond: bool, source: str, key: str, what: str):
    if not cond:
        raise ConfigError(f"{source}: {key} {what}")


def validate_model(model: DictConfig, source: str = "config", prefix: str = "model."):
    """Range checks the types alone cannot express."""
    _require(model.head in HEADS, source, f"{prefix}head", f"must be one of {', '.join(HEADS)}, got {model.head!r}")
    _require(model.num_classes >= 1, source, f"{prefix}num_classes", "must be >= 1")
    _require(model.channels >= 1, source, f"{prefix}channels", "must be >= 1")
    _require(0.0 <= model.dropout < 1.0, source, f"{prefix}dropout", "must be in [0, 1)")
    _require(model.norm in ("bn", "syncbn", "gn"), source, f"{prefix}norm", f"must be bn, syncbn or gn, got {model.norm!r}")
    _require(model.recurrence >= 1, source, f"{prefix}recurrence", f"must be >= 1, got {model.recurrence}")
    _require(model.reduction >= 1, source, f"{prefix}reduction", "must be >= 1")
    _require(model.encoder.output_stride in (8, 16, 32), source, f"{prefix}encoder.output_stride",
             f"must be 8, 16 or 32, got {model.encoder.output_stride}")
    _require(model.aux.channels >= 1, source, f"{prefix}aux.channels", "must be >= 1")
    _require(model.aux.loss_weight >= 0, source, f"{prefix}aux.loss_weight", "must be >= 0")


def model_config(cfg: Any = None, source: str = "config") -> DictConfig:
    """Typed, validated model section from a mapping (a whole config or its ``model``)."""
    cfg = {} if cfg is None else cfg
    if isinstance(cfg, (dict, DictConfig)) and "model" in cfg:
        cfg = cfg["model"]
    if not isinstance(cfg, (dict, DictConfig)):
        raise ConfigError(f"{source}: the model section must be a mapping, got {type(cfg).__name__}")
    model = _merge(ModelConfig, cfg, source, "model.")
    validate_model(model, source)
    return model


def load_yaml(path: str) -> DictConfig:
    """Read a YAML file into a DictConfig with a one-line error for every failure."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and friends: report, do not trace
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    if isinstance(cfg, ListConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not a list")
    return cfg


def parse_overrides(overrides: List[str], source: str = "command line") -> DictConfig:
    """``["train.max_iters=200", "model.recurrence=1"]`` -> a DictConfig."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"{source}: override {item!r} must look like key=value, e.g. model.recurrence=1")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: bad override: {str(err).splitlines()[0]}") from None


def load_config(path: str, overrides: Optional[List[str]] = None, schema=Config) -> DictConfig:
    """Load ``path``, apply ``key=value`` overrides, check against ``schema`` and validate."""
    user = load_yaml(path)
    if overrides:
        user = OmegaConf.merge(user, parse_overrides(overrides, f"{path} (overrides)"))
    cfg = _merge(schema, user, path)
    validate(cfg, path)
    return cfg


def validate(cfg: DictConfig, source: str = "config"):
    """Section-wise range checks for a merged config."""
    validate_model(cfg.model, source)
