"""What every tool shares: logging setup, config loading, and turning user errors into one clear line."""
import logging
import sys

from .config import load_config
from .errors import ConfigError, SegattnError


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


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


def add_print_config(parser):
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (defaults filled, overrides applied) as YAML and exit")
    return parser


def model_tool_config(args, overrides=(), print_config: bool = False):
    """``(config, checkpoint contents)`` of a tool that loads a checkpoint: ``args.config`` (contents None: not
    read here), or the config saved in ``args.checkpoint`` (its contents returned, for ``load_model``'s ``ckpt``,
    so the file is read once).

    A first positional that is a ``key=value`` (no config given) is an override.
    """
    import os

    config, overrides = args.config, list(overrides)
    if config and "=" in config and not os.path.isfile(config):
        config, overrides = None, [config] + overrides
        args.config = None
    if config:
        return load_tool_config(config, overrides, print_config), None
    if not getattr(args, "checkpoint", None):
        raise ConfigError("give a CONFIG, or --checkpoint CKPT to use the config saved in it")
    from .engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    cfg = checkpoint_config(ckpt, args.checkpoint, overrides)
    if print_config:
        print_resolved(cfg)
    return cfg, ckpt


def checkpoint_config(ckpt: dict, path: str, overrides=(), overrides_source: str = "command line",
                      hint: str = "give its YAML as CONFIG"):
    """The config saved in checkpoint ``ckpt`` (read from ``path``), with overrides, checked as a tool's."""
    from .config import apply_overrides, config_from_dict

    if not ckpt.get("config"):
        raise ConfigError(f"{path}: the checkpoint holds no config; {hint}")
    source = f"{path} (its saved config)"
    return check_tool_config(apply_overrides(config_from_dict(ckpt["config"], source), overrides, overrides_source),
                             source)


def print_resolved(cfg):
    """``--print-config``: the resolved config as YAML on stdout, then exit 0."""
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(cfg, resolve=True), end="")
    raise SystemExit(0)


def parse_tool_args(parser, argv):
    """``parse_intermixed_args``; with ``--print-config`` the tool's required options may be left out."""
    if "--print-config" in argv:
        for action in parser._actions:  # argparse keeps no public list; the config needs none of them
            if action.option_strings:
                action.required = False
    return parser.parse_intermixed_args(argv)


def require_checkpoint(args):
    """The ``--checkpoint`` a tool needs (``--print-config`` runs without one)."""
    if not args.checkpoint:
        raise ConfigError("--checkpoint is required: a .pth written by tools/train.py or tools/convert_checkpoint.py")
    return args.checkpoint


def check_tool_config(cfg, source: str):
    """``imports`` imported, ``model`` and ``data`` checked against the registries, the image size limit set."""
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
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err}); it must be importable from here, e.g. on "
                              "PYTHONPATH or pip-installed") from None


def run(main, argv=None):
    """Run ``main(argv)``; a :class:`SegattnError` prints ``error: ...`` and exits 2 (``--debug``: traceback).

    Every other exception is a bug or the machine's problem (out of memory, a
    shape mismatch) and keeps its traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    setup_logging()
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SegattnError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def add_model_args(parser, device_help="cpu / cuda (default: train.device)", checkpoint_required=True):
    """Arguments every tool that loads a trained model takes: config, overrides, checkpoint, device."""
    parser.add_argument("config", nargs="?", help="YAML config, e.g. configs/demo/ccnet.yaml (default: the config "
                        "saved in --checkpoint)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--checkpoint", help="a .pth written by tools/train.py or tools/convert_checkpoint.py"
                        + (" (required)" if checkpoint_required else ""))
    parser.add_argument("--device", default=None, help=device_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return add_print_config(parser)
