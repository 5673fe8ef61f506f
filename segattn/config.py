"""Configuration: the schema, YAML loading, ``key=value`` overrides and validation.

The schema is a tree of dataclasses read by OmegaConf, so types are checked on
merge. On top of that every user mistake becomes a :class:`ConfigError`, one
line naming the file and the dotted key: unknown keys (with the closest valid
key suggested), wrong types and out-of-range values.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .registry import HEADS, suggest

log = logging.getLogger(__name__)

# config nodes that name a registered class: {type: NAME, <that class's options>} (or just NAME)
TYPED_KEYS = ("model.head", "model.context_block", "model.encoder.block_attention")


_PASSED = {}  # check name -> the contents that passed it in this process


def check_once(what: str, node: Any, check) -> None:
    """Run ``check()`` unless contents equal to ``node``'s have passed the check ``what`` in this process.

    A tool checks its config when it loads it, and the trainer or ``build_model`` it calls would check the same
    sections again: each is checked once per content, whatever the number of callers on a path (a section
    changed since is checked anew; a failure is never remembered).
    """
    key = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else repr(node)
    passed = _PASSED.setdefault(what, set())
    if key not in passed:
        check()
        passed.add(key)


def legacy_model_keys() -> dict:
    """The flat model keys of the first config format -> (head that took them, its option name now), from each
    registered head's ``legacy_options``."""
    return {old: (name, option) for name in HEADS for old, option in HEADS[name].legacy_options.items()}


PHOTOMETRIC = ("none", "jitter", "mmseg")  # data.photometric
PAD = ("black", "black_after", "mean")     # data.pad
INITS = ("pytorch", "mmseg")               # model.init


def photometric_kind(value) -> str:
    """``data.photometric``: none | jitter | mmseg (a YAML true is jitter, false none, as the first configs wrote)."""
    if isinstance(value, bool) or value in ("True", "False", "true", "false"):
        return "jitter" if str(value).lower() == "true" else "none"
    return "none" if value is None else str(value)


@dataclass
class EncoderConfig:
    name: str = "resnet101"          # smp encoder name, or tu-<timm name>
    weights: Optional[str] = "imagenet"  # imagenet | path to a state dict | null
    output_stride: int = 8           # 8 (dilations 2, 4) or 16
    block_attention: Any = "none"    # none | an attention block name or {type: se, <its options>}: in every block
    attention_stages: List[int] = field(default_factory=lambda: [1, 2, 3, 4])


@dataclass
class AuxConfig:
    enabled: bool = True             # FCN head on layer3 (PSPNet / CCNet / DANet recipes)
    channels: int = 256
    loss_weight: float = 0.4


@dataclass
class ModelConfig:
    head: Any = field(default_factory=lambda: {"type": "ccnet"})  # {type: <a registered head>, <its options>}
    context_block: Any = "none"      # an attention block on layer4 features before the head (name or mapping)
    num_classes: int = 19
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    channels: int = 512              # inner width of every head
    dropout: float = 0.1
    norm: str = "bn"                 # bn | syncbn | gn
    align_corners: bool = False      # bilinear upsampling of the logits; mmsegmentation's 769x769 models use true
    aux: AuxConfig = field(default_factory=AuxConfig)
    init: str = "pytorch"            # the heads' initial weights: pytorch (its layer defaults) | mmseg (its ConvModule
    # He fan-out, classifiers N(0, 0.01): segattn/models/init.py)
    init_from: Optional[str] = None  # a segattn checkpoint whose weights start training (fine-tuning; not a resume)


@dataclass
class DataConfig:
    dataset: str = "cityscapes"      # a registered dataset: cityscapes | ade20k | voc | pascal_context | coco_stuff | folder
    root: str = "data/cityscapes"
    demo: bool = False               # generate the procedural demo set at root on first use
    train_split: str = "train"
    val_split: str = "val"
    class_names: List[str] = field(default_factory=list)  # folder datasets only
    palette: List[Any] = field(default_factory=list)  # [[R, G, B], ...] one per class: the colours every picture
    # draws classes in; empty: the dataset's own (official; a folder's ROOT/palette.txt; else a fixed palette)
    ignore_index: int = 255
    crop_size: List[int] = field(default_factory=lambda: [769, 769])  # H, W
    scale_range: List[float] = field(default_factory=lambda: [0.5, 2.0])
    # the recipe's augmentation choices: the defaults are the papers' (docs/training.md lists each with its source)
    train_scale: Optional[List[int]] = None  # null: scale the image's own size by scale_range | [long, short]:
    # fit it into [long, short] x ratio keeping its aspect, ratio in scale_range (mmseg's RandomResize)
    cat_max_ratio: float = 1.0       # < 1: re-draw a crop where one class fills this share (mmseg: 0.75); 1: off
    flip: bool = True
    photometric: Any = "none"        # none | jitter (albumentations' ColorJitter) | mmseg (its PhotoMetricDistortion)
    pad: str = "black"               # black: pad the image before cropping | black_after: after the crop, flip and
    # colour change, before normalising (mmseg's Pad step) | mean: pad with 0 after normalising (its data preprocessor)
    workers: int = 4
    max_bad_samples: int = 20        # unreadable samples skipped (with a warning) before aborting
    max_pixels: int = 268435456      # images above this many pixels are refused before decoding (16384 x 16384)
    unknown_labels: str = "warn"     # label values the dataset does not define: warn (train as ignore) | error
    test_resize: Optional[List[int]] = None  # [long, short]: rescale eval images to fit, keeping the ratio, before
    # inference, as mmsegmentation's test Resize(scale=(long, short), keep_ratio=True); logits resized back


@dataclass
class TrainConfig:
    experiment: str = "experiment"   # checkpoints/<experiment>/, runs/<experiment>/
    out_dir: str = "checkpoints"
    log_dir: str = "runs"
    batch_size: int = 8              # global batch
    max_iters: int = 60000
    lr: float = 0.01
    optimizer: str = "sgd"           # sgd (the papers', with momentum) | adamw (train.momentum unused; its betas 0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    min_lr: float = 0.0              # the poly schedule's floor: lr = (lr0 - min_lr)(1 - t/T)^power + min_lr
    poly_to_last: bool = False       # T = max_iters - 1: the floor reached at the last iteration (mmengine's PolyLR)
    poly_iters: Optional[int] = None  # the iterations the decay spans (null: max_iters); then the lr stays at the floor
    weight_decay_all: bool = False   # true: decay norms and biases too (mmseg) | false: only weights of rank >= 2
    loss: str = "ce"                 # ce | ohem
    loss_average: str = "valid"      # ce's mean: valid (over labelled pixels) | all (over every pixel, as mmseg)
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100000
    val_interval: int = 4000
    log_interval: int = 20
    checkpoint_interval: int = 1000
    num_vis: int = 4                 # val images with predictions in the loggers
    loggers: List[str] = field(default_factory=lambda: ["tensorboard"])  # tensorboard | mlflow (the [mlflow] extra)
    mlflow_uri: Optional[str] = None  # MLflow tracking URI; null: sqlite:///<log_dir>/mlflow.db (offline)
    seed: int = 0
    amp: str = "fp16"                # fp16 (GradScaler, CUDA only) | bf16 | auto (fp16 CUDA, bf16 CPU if native) | off
    channels_last: bool = True       # NHWC activations and weights in training: faster convolutions (docs/configs.md)
    accumulate: int = 1              # gradient accumulation steps per iteration
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    threads: int = 0                 # torch CPU threads; 0 leaves torch's default
    max_nonfinite: int = 5           # consecutive non-finite losses (steps skipped) before the run stops
    overwrite: bool = False          # a new run may replace an earlier run's checkpoints in its folder


COMPILE_MODES = ("off", "on", "auto")  # eval.compile (segattn.engine.compiled)


@dataclass
class EvalConfig:
    mode: str = "whole"              # whole | slide
    crop_size: List[int] = field(default_factory=lambda: [769, 769])
    stride: List[int] = field(default_factory=lambda: [513, 513])
    scales: List[float] = field(default_factory=lambda: [1.0])
    flip: bool = False
    channels_last: bool = True       # NHWC weights (so activations) in eval.py / infer.py / visualize_attention.py
    compile: str = "off"             # torch.compile in eval.py / infer.py: off | on | auto (when the run repays it)


@dataclass
class Config:
    # modules imported before the config's names are looked up: a user's own heads, blocks or datasets, registered
    # in files outside segattn (as mmsegmentation's custom_imports), e.g. [myproject.heads]
    imports: List[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _check_keys(node: Any, schema: Any, prefix: str, source: str):
    """Raise ConfigError for the first key in ``node`` that ``schema`` lacks."""
    if not isinstance(node, (dict, DictConfig)) or not isinstance(schema, DictConfig):
        return
    valid = [str(k) for k in schema.keys()]
    for key in node.keys():
        dotted = f"{prefix}{key}"
        if str(key) not in valid:
            inside = [f"{prefix}{section}.{key}" for section in valid
                      if isinstance(schema._get_node(section), DictConfig) and str(key) in schema[section]]
            hint = (f"; did you mean {' or '.join(map(repr, inside))}?" if inside
                    else suggest(str(key), valid, prefix, "valid keys"))
            raise ConfigError(f"{source}: unknown key {dotted!r}{hint}")
        child_schema = schema._get_node(key)
        if isinstance(child_schema, DictConfig) and child_schema._metadata.object_type not in (None, dict):
            _check_keys(node[key], child_schema, dotted + ".", source)


def _merge(schema_cls, user: Any, source: str, prefix: str = "") -> DictConfig:
    schema = OmegaConf.structured(schema_cls)
    _check_keys(user, schema, prefix, source)
    try:
        return merge_layers(schema, user, prefix)
    except OmegaConfBaseException as err:
        key = f"{prefix}{err.full_key}" if getattr(err, "full_key", None) else prefix.rstrip(".")
        msg = str(err).splitlines()[0]
        raise ConfigError(f"{source}: bad value for {key!r}: {msg}") from None


def _require(cond: bool, source: str, key: str, what: str):
    if not cond:
        raise ConfigError(f"{source}: {key} {what}")


def _typed(node: Any, key: str) -> Optional[dict]:
    """The typed spec at dotted ``key`` of ``node`` as a plain dict (None if absent); a name -> ``{type: name}``."""
    value = OmegaConf.select(node, key, default=None) if isinstance(node, DictConfig) else None
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value, resolve=True)
    return {"type": value} if isinstance(value, str) else value


def merge_layers(lower: DictConfig, upper: Any, prefix: str = "") -> DictConfig:
    """``upper`` over ``lower``, except that a typed node whose ``type`` changes is replaced, not merged.

    So a config that switches ``model.head`` from ``{type: nonlocal, reduction: 2}``
    to ``{type: ccnet}`` does not inherit ``reduction``; an override that keeps
    the type (``model.head.recurrence=1``) merges as usual.
    """
    upper = upper if isinstance(upper, DictConfig) else OmegaConf.create(upper if upper is not None else {})
    merged = OmegaConf.merge(lower, upper)
    for key in TYPED_KEYS:
        if not key.startswith(prefix):
            continue
        local = key[len(prefix):]
        up, low = _typed(upper, local), _typed(lower, local)
        if up is None:
            continue
        new_type = "type" in up and (low is None or up["type"] != low.get("type"))
        OmegaConf.update(merged, local, up if new_type else {**(low or {}), **up}, merge=False)
    return merged


def _upgrade_model(model: Any, source: str) -> Any:
    """Move the first format's flat head options (``model.recurrence`` ...) into ``model.head``."""
    legacy = legacy_model_keys()
    if not isinstance(model, (dict, DictConfig)) or not any(k in model for k in legacy):
        return model
    model = OmegaConf.create(OmegaConf.to_container(model) if isinstance(model, DictConfig) else dict(model))
    head = _typed(model, "head") or dict(ModelConfig().head)
    moved, found = [], [k for k in legacy if k in model]
    for old, (head_type, option) in legacy.items():
        if old in model:
            value = model.pop(old)
            if head.get("type") == head_type:
                head.setdefault(option, value)
                moved.append(f"{option}: {value}")
    model.head = head
    log.warning("%s: model.%s: old flat head options; write model.head: {type: %s%s} instead",
                source, "/".join(found), head["type"], "".join(f", {m}" for m in moved))
    return model


def model_config(cfg: Any = None, source: str = "config") -> DictConfig:
    """Typed model section from a mapping (a whole config or its ``model``); ranges are checked by the builder."""
    cfg = {} if cfg is None else cfg
    if isinstance(cfg, (dict, DictConfig)) and "model" in cfg:
        cfg = cfg["model"]
    if not isinstance(cfg, (dict, DictConfig)):
        raise ConfigError(f"{source}: the model section must be a mapping, got {type(cfg).__name__}")
    model = _merge(ModelConfig, _upgrade_model(cfg, source), source, "model.")
    validate_model(model, source)
    return model


def validate_model(model: DictConfig, source: str = "config", prefix: str = "model."):
    """The ranges of the model section's own numbers (names and options are the builder's to check)."""
    _require(model.num_classes >= 1, source, f"{prefix}num_classes", "must be >= 1")
    _require(model.channels >= 1, source, f"{prefix}channels", "must be >= 1")
    _require(0.0 <= model.dropout < 1.0, source, f"{prefix}dropout", "must be in [0, 1)")
    _require(model.aux.channels >= 1, source, f"{prefix}aux.channels", "must be >= 1")
    _require(model.aux.loss_weight >= 0, source, f"{prefix}aux.loss_weight", "must be >= 0")
    _require(model.init in INITS, source, f"{prefix}init", f"must be one of {', '.join(INITS)}, got {model.init!r}")


def load_yaml(path: str, _seen: tuple = ()) -> DictConfig:
    """Read a YAML file into a DictConfig with a one-line error for every failure.

    A top-level ``_base_: other.yaml`` (relative to this file) is read first and
    this file's keys are merged over it, typed nodes as :func:`merge_layers` says.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and friends: report, do not trace
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        mark = getattr(err, "problem_mark", None)
        if mark is not None:  # where the parser gave up, and why
            first = f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
            if getattr(err, "context", None):
                first += f" ({err.context})"
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    if isinstance(cfg, ListConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not a list")
    if "_base_" not in cfg:
        return cfg
    base = cfg.pop("_base_")
    if not isinstance(base, str):
        raise ConfigError(f"{path}: _base_ must be one file name, got {base!r}")
    base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
    if os.path.abspath(base_path) in _seen + (os.path.abspath(path),):
        raise ConfigError(f"{path}: _base_ {base!r} makes a cycle")
    if not os.path.isfile(base_path):
        raise ConfigError(f"{path}: _base_ {base!r} not found (looked for {base_path})")
    return merge_layers(load_yaml(base_path, _seen + (os.path.abspath(path),)), cfg)


def parse_overrides(overrides: List[str], source: str = "command line") -> DictConfig:
    """``["train.max_iters=200", "model.head.recurrence=1"]`` -> a DictConfig."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"{source}: override {item!r} must look like key=value, e.g. train.max_iters=200")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: bad override: {str(err).splitlines()[0]}") from None


def load_config(path: str, overrides: Optional[List[str]] = None, schema=Config) -> DictConfig:
    """Load ``path`` (and its ``_base_``), apply ``key=value`` overrides, check against ``schema``, validate."""
    user = load_yaml(path)
    if "model" in user:
        user.model = _upgrade_model(user.model, path)
    if overrides:
        dotlist = parse_overrides(overrides)
        _check_keys(dotlist, OmegaConf.structured(schema), "", "command line")
        user = merge_layers(user, dotlist)
    cfg = _merge(schema, user, path)
    validate(cfg, path)
    return cfg


def config_from_dict(saved: dict, source: str = "checkpoint") -> DictConfig:
    """A config as a checkpoint or a pretrained folder holds it (a resolved tree), checked as a YAML file is."""
    user = OmegaConf.create(saved)
    if "model" in user:
        user.model = _upgrade_model(user.model, source)
    cfg = _merge(Config, user, source)
    validate(cfg, source)
    return cfg


def apply_overrides(cfg: DictConfig, overrides, source: str = "overrides") -> DictConfig:
    """``cfg`` with ``key=value`` overrides on top, checked and validated as :func:`load_config` does."""
    if not overrides:
        return cfg
    dotlist = parse_overrides(list(overrides), source)
    _check_keys(dotlist, OmegaConf.structured(Config), "", source)
    cfg = _merge(Config, merge_layers(cfg, dotlist), source)
    validate(cfg, source)
    return cfg


def validate(cfg: DictConfig, source: str = "config"):
    """Section-wise range checks for a merged config."""
    validate_model(cfg.model, source)
    d, t, e = cfg.data, cfg.train, cfg.eval
    if t.amp in ("False", "false"):  # YAML 1.1 reads a bare `off` (in a file or key=value) as false
        t.amp = "off"
    _require(len(d.crop_size) == 2 and min(d.crop_size) >= 1, source, "data.crop_size", "must be [H, W] >= 1")
    _require(len(d.scale_range) == 2 and 0 < d.scale_range[0] <= d.scale_range[1], source, "data.scale_range",
             "must be [low, high] with 0 < low <= high")
    _require(0 <= d.ignore_index <= 255, source, "data.ignore_index", "must be in 0..255")
    _require(d.train_scale is None or (len(d.train_scale) == 2 and min(d.train_scale) >= 1), source,
             "data.train_scale", "must be null or [long edge, short edge] >= 1")
    _require(0 < d.cat_max_ratio <= 1, source, "data.cat_max_ratio", f"must be in (0, 1], got {d.cat_max_ratio}")
    kind = photometric_kind(d.photometric)
    _require(kind in PHOTOMETRIC, source, "data.photometric", f"must be one of {', '.join(PHOTOMETRIC)}, got {kind!r}")
    d.photometric = kind
    _require(d.pad in PAD, source, "data.pad", f"must be one of {', '.join(PAD)}, got {d.pad!r}")
    _require(d.workers >= 0, source, "data.workers", "must be >= 0")
    _require(d.max_pixels >= 1, source, "data.max_pixels", "must be >= 1")
    _require(d.test_resize is None or (len(d.test_resize) == 2 and min(d.test_resize) >= 1), source,
             "data.test_resize", "must be null or [long edge, short edge] >= 1")
    _require(d.unknown_labels in ("warn", "error"), source, "data.unknown_labels",
             f"must be warn or error, got {d.unknown_labels!r}")
    unknown = [name for name in t.loggers if name not in ("tensorboard", "mlflow")]
    _require(not unknown, source, "train.loggers", f"unknown {unknown}; choose from tensorboard, mlflow")
    _require(t.batch_size >= 1, source, "train.batch_size", "must be >= 1")
    _require(t.max_iters >= 1, source, "train.max_iters", "must be >= 1")
    _require(t.lr > 0, source, "train.lr", f"must be > 0, got {t.lr}")
    _require(t.momentum >= 0 and t.weight_decay >= 0, source, "train.momentum/weight_decay", "must be >= 0")
    _require(t.amp in ("fp16", "bf16", "auto", "off"), source, "train.amp",
             f"must be fp16, bf16, auto or off, got {t.amp!r}")
    _require(t.accumulate >= 1, source, "train.accumulate", "must be >= 1")
    _require(t.max_nonfinite >= 1, source, "train.max_nonfinite", "must be >= 1")
    _require(t.optimizer in ("sgd", "adamw"), source, "train.optimizer",
             f"must be sgd or adamw, got {t.optimizer!r}")
    _require(t.loss in ("ce", "ohem"), source, "train.loss", f"must be ce or ohem, got {t.loss!r}")
    _require(t.loss_average in ("valid", "all"), source, "train.loss_average",
             f"must be valid or all, got {t.loss_average!r}")
    _require(t.loss_average == "valid" or t.loss == "ce", source, "train.loss_average",
             "must be valid with train.loss=ohem (OHEM averages over the pixels it keeps); all is for ce")
    _require(t.poly_iters is None or t.poly_iters >= 1, source, "train.poly_iters",
             f"must be >= 1 (or null: the decay spans train.max_iters), got {t.poly_iters}")
    _require(0 <= t.min_lr < t.lr, source, "train.min_lr", f"must be in [0, train.lr), got {t.min_lr}")
    _require(0 < t.ohem_thresh <= 1, source, "train.ohem_thresh", "must be in (0, 1]")
    for key in ("val_interval", "log_interval", "checkpoint_interval"):
        _require(t[key] >= 1, source, f"train.{key}", "must be >= 1")
    _require(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"), source, "train.device",
             f"must be auto, cpu or cuda[:N], got {t.device!r}")
    _require(e.mode in ("whole", "slide"), source, "eval.mode", f"must be whole or slide, got {e.mode!r}")
    _require(len(e.crop_size) == 2 and len(e.stride) == 2 and min(e.stride) >= 1, source, "eval.crop_size/stride",
             "must be [H, W] pairs >= 1")
    _require(all(0 < x <= e.crop_size[i] for i, x in enumerate(e.stride)), source, "eval.stride",
             "must not exceed eval.crop_size")
    _require(len(e.scales) >= 1 and min(e.scales) > 0, source, "eval.scales", "must be a non-empty list of scales > 0")
    e.compile = {"True": "on", "False": "off"}.get(e.compile, e.compile)  # YAML reads a bare on / off as a boolean
    _require(e.compile in COMPILE_MODES, source, "eval.compile", f"must be off, on or auto, got {e.compile!r}")
