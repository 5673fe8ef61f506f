"""What every tool shares: logging setup and turning user errors into one clear line."""
import logging
import sys

from .config import ConfigError


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


USER_ERRORS = (ConfigError, FileNotFoundError, ValueError, RuntimeError, OSError)


def run(main, argv=None):
    """Run ``main(argv)``; user errors print ``error: ...`` and exit 2 (``--debug`` shows the traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    setup_logging()
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def add_model_args(parser, device_help="cpu / cuda (default: train.device)"):
    """Arguments every tool that loads a trained model takes: config, overrides, checkpoint, device."""
    parser.add_argument("config", help="YAML config, e.g. configs/demo/ccnet.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--checkpoint", required=True, help="a .pth written by tools/train.py")
    parser.add_argument("--device", default=None, help=device_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser
