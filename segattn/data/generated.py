"""A generated dataset's folder and command line, shared by the demo set and the context probe.

A generator claims its folder before the first file (``.demo``, refused where
the folder holds someone's files) and marks it complete after the last
(``.complete``, with the settings it was made with), so a later run skips a set
that is there and never writes among a user's data.
"""
import argparse
import os

from ..errors import ConfigError


def refuse_foreign_folder(root: str):
    """ConfigError when ``root`` holds files and is not a demo set: demo data is never written among a user's."""
    if not os.path.isdir(root) or any(os.path.isfile(os.path.join(root, m)) for m in (".demo", ".complete")):
        return
    for folder, _, files in os.walk(root):
        if files:
            example = os.path.join(folder, files[0])
            raise ConfigError(f"data.root={root!r} holds files that are not the demo set (e.g. {example}); "
                              "data.demo=true only generates into an empty folder or an earlier demo set: set "
                              "data.demo=false to use the data there, or another data.root")


def start_generating(root: str, settings: str, note: str) -> bool:
    """False when ``root`` holds a complete generated set of ``settings`` already; else claim the folder (refused if
    it holds someone's files) by writing ``.demo`` with ``note``, and return True. :func:`finish_generating`
    writes ``.complete`` after the last file."""
    marker = os.path.join(root, ".complete")
    if os.path.isfile(marker) and open(marker).read().strip() == settings:
        return False
    refuse_foreign_folder(root)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".demo"), "w") as f:
        f.write(note + "\n")
    return True


def finish_generating(root: str, settings: str):
    with open(os.path.join(root, ".complete"), "w") as f:
        f.write(settings + "\n")


def generator_main(generate_set, description: str, root: str, train: int, val: int, argv=None):
    """The command line of a generated set's module (``python -m segattn.data.demo``, ``...context_probe``):
    ``--root``, ``--train``, ``--val`` (image counts) and ``--seed``, then ``generate_set(root, train, val, seed)``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--root", default=root)
    p.add_argument("--train", type=int, default=train, help="training images")
    p.add_argument("--val", type=int, default=val, help="validation images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    generate_set(args.root, args.train, args.val, args.seed)
    print(f"ready in {args.root}")
