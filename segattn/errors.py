"""One base class for mistakes a user can fix: every tool prints these as one line.

Anything else (a shape bug, CUDA running out of memory) is not a user error and
keeps its traceback. Each subclass also derives from the built-in exception a
caller would expect, so ``except ValueError`` keeps working.
"""


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
