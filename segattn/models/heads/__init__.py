"""Decode heads, one file each.

Registration is this one loop: every module of the folder is imported, so a
head registers itself in ``HEADS`` by being a file here. Import a head's class
from its own module (``from segattn.models.heads.ccnet import RCCAHead``).
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
