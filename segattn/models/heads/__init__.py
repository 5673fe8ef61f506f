"""Decode heads, one file each.

Registration is this one loop: every module of the folder is imported, so a
head registers itself in ``HEADS`` by being a file here. Import a head's class
from its own module (``from segattn.models.heads.ccnet import RCCAHead``).
"""
from ...registry import import_all

from . import fcn  # noqa: F401,E402  (the baseline first: the tables list the heads in registry order)

import_all(__name__, __path__)
