"""One base class for mistakes a user can fix, and :func:`run`, which prints them as one line.

Anything else (a shape bug, CUDA running out of memory) is not a user error and
keeps its traceback. Each subclass also derives from the built-in exception a
caller would expect, so ``except ValueError`` keeps working.
"""
import logging
import sys


class SegattnError(Exception):
    """A user-facing error; the message is one line naming the file or key and what is wrong."""


class ConfigError(SegattnError, ValueError):
    """A configuration mistake: unknown key, wrong type, out-of-range value, unknown name."""


class CheckpointError(SegattnError, ValueError):
    """A checkpoint that cannot be used; the message names the file."""


class DataError(SegattnError, ValueError):
    """A dataset, image or label that cannot be used; the message names the file."""


class MissingFileError(SegattnError, FileNotFoundError):
    """A file or folder the user named (or the config points at) is not there."""


class MissingPackageError(SegattnError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""


class RunError(SegattnError, RuntimeError):
    """A run that cannot go on for a reason the user can act on (diverged, device missing, ...)."""


class OutputError(SegattnError, OSError):
    """A result could not be written where the user asked (permissions, full disk, outside --output)."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, at most ``limit`` characters: what a one-line error quotes of a
    library's own (often multi-line) message."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def run(main, argv=None):
    """Run ``main(argv)`` as a command (every tool, every ``python -m`` entry point of the package).

    A :class:`SegattnError` prints ``error: ...`` and exits 2 (``--debug``: its traceback); every other exception
    is a bug or the machine's problem (out of memory, a shape mismatch) and keeps its traceback.
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
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
