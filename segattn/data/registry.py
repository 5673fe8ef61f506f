"""``DATASETS``: ``data.dataset`` names -> dataset classes, each filled in the file that defines the class.

A dataset is one file: a :class:`~segattn.data.listed.ListedDataset` subclass
with a ``name``, decorated with :func:`register`. Everything the tools need
(building a split, class names, palette, the label tables the health check
reads, what ``--save-pred`` writes) is asked of the class, so no other module
branches on a dataset's name.
"""
from ..registry import Registry

DATASETS = Registry("dataset")


def dataset_class(data_cfg) -> type:
    """The class ``data.dataset`` names (a ConfigError listing the valid names otherwise)."""
    return DATASETS.get(data_cfg.dataset, "data.dataset")


def register(cls):
    """Class decorator: ``DATASETS[cls.name] = cls``."""
    return DATASETS.register(cls.name)(cls)
