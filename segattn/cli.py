"""What every tool shares: logging setup, config loading, and turning user errors into one clear line."""
import logging
import sys

from .config import load_config
from .errors import ConfigError, SegattnError


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


def load_tool_config(path: str, overrides=None):
    """``load_config`` plus the names and options of ``model`` and ``data`` checked against the registries."""
    from .data import check_data_config
    from .data.io import set_max_pixels
    from .models import check_model_config

    cfg = load_config(path, overrides)
    import_modules(cfg.imports)
    check_model_config(cfg.model, path)
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
    parser.add_argument("config", help="YAML config, e.g. configs/demo/ccnet.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--checkpoint", required=checkpoint_required,
                        help="a .pth written by tools/train.py or tools/convert_checkpoint.py")
    parser.add_argument("--device", default=None, help=device_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser
