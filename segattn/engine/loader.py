"""Data loading that survives bad files and resumes exactly.

``EpochSampler`` draws epoch ``e``'s order from ``(seed, e)`` and can start
mid-epoch, so a resumed run sees the same samples as an uninterrupted one.
``SkipBadSamples`` turns an unreadable sample into a logged warning naming the
file, up to a limit, instead of a crash inside a worker. Every loader draws its
workers' seeds from its own generator, never from the global one, so building
a loader mid-epoch (on resume) leaves the dropout stream where an
uninterrupted run has it. ``train_batches`` gives a run's micro-batches in that
order from any iteration on; ``loading`` ends a loader's worker processes when
the loop over it ends, however it ends.
"""
import logging
from contextlib import contextmanager
from typing import List, NamedTuple, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data.base import LabelError
from ..errors import DataError
from .rng import rank_seed

log = logging.getLogger("segattn")


class EpochSampler(Sampler):
    """This rank's share of epoch ``epoch``'s global batches, from global batch ``start_batch`` on.

    The epoch's order is a permutation drawn from ``(seed, epoch)``; global
    batch b is ``order[b * batch : (b + 1) * batch]`` and rank r takes its r-th
    contiguous slice, so any world size sees the same global batches.
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, start_batch: int = 0, batch: int = 1,
                 rank: int = 0, world: int = 1):
        self.size, self.seed, self.epoch, self.start_batch = size, seed, epoch, start_batch
        self.batch, self.rank, self.world = batch, rank, world

    def order(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def indices(self):
        order, per_rank = self.order(), self.batch // self.world
        out = []
        for b in range(self.start_batch, self.size // self.batch):
            start = b * self.batch + self.rank * per_rank
            out += order[start:start + per_rank]
        return out

    def __iter__(self):
        return iter(self.indices())

    def __len__(self):
        return len(self.indices())


class ShardSampler(Sampler):
    """Evaluation: the first ``size`` indices in order, every ``world``-th one from ``rank``."""

    def __init__(self, size: int, rank: int = 0, world: int = 1):
        self.items = list(range(rank, size, world))

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


class BadSampleLimit(DataError):
    """More unreadable samples than ``data.max_bad_samples``."""


class SkipBadSamples(torch.utils.data.Dataset):
    """Wraps a dataset; an item that raises becomes ``None`` (dropped by :func:`collate`).

    Augmentation is seeded per (seed, epoch, index), so a sample's crop does not
    depend on which worker loads it or on where a run was resumed.
    """

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        transform = getattr(self.dataset, "transform", None)
        if transform is not None and hasattr(transform, "pipeline"):
            transform.pipeline.set_random_seed(int(np.random.SeedSequence([self.seed, self.epoch, index])
                                                   .generate_state(1)[0]))
        try:
            return self.dataset[index]
        except LabelError as err:  # refused by data.unknown_labels=error: the main process stops the run
            return ("refused", index, str(err))
        except (OSError, ValueError) as err:  # unreadable or inconsistent file
            return ("bad", index, str(err).splitlines()[0])


class Batch(NamedTuple):
    images: Optional[torch.Tensor]  # None when no sample of the batch could be read
    masks: Optional[torch.Tensor]
    paths: List[str]
    bad: List[str]  # one message per skipped sample
    notes: List[str]  # warnings about samples that were used
    refused: List[str]  # samples data.unknown_labels=error refuses


def collate(samples) -> Batch:
    """Good samples stacked; skipped and refused ones, and notes, as messages for the main process."""
    good = [s for s in samples if not isinstance(s[0], str)]
    images = torch.stack([s[0] for s in good]) if good else None
    masks = torch.stack([s[1] for s in good]) if good else None
    return Batch(images, masks, [s[2] for s in good], [s[2] for s in samples if s[0] == "bad"],
                 [note for s in good for note in s[3]], [s[2] for s in samples if s[0] == "refused"])


class BadSampleCounter:
    """Counts skipped samples against ``data.max_bad_samples``; logs each, and each file's notes once."""

    def __init__(self, limit: int):
        self.limit, self.noted, self.messages = limit, set(), []

    @property
    def count(self) -> int:
        return len(self.messages)

    def report(self, batch: Batch):
        if batch.refused:
            raise LabelError(batch.refused[0])
        messages = batch.bad
        for note in batch.notes:
            if note not in self.noted:
                self.noted.add(note)
                log.warning("%s", note)
        for msg in messages:
            self.messages.append(msg)
            log.warning("skipped unreadable sample (%d/%d): %s", self.count, self.limit, msg)
        if self.count > self.limit:
            raise BadSampleLimit(f"more than data.max_bad_samples={self.limit} unreadable samples; "
                                 f"last: {messages[-1]}; run tools/check_dataset.py or fix the files")


def make_loader(dataset: SkipBadSamples, batch_size, workers, sampler, drop_last, seed: int = 0):
    """A loader whose worker seeds come from its own generator, seeded from ``seed``."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=drop_last, pin_memory=torch.cuda.is_available(),
                      persistent_workers=False, generator=torch.Generator().manual_seed(seed))


@contextmanager
def loading(loader: DataLoader):
    """Iterate ``loader`` in a ``with`` block; its worker processes end with the block, a raise included.

    Left to PyTorch, a loader's workers end when its iterator is collected: after a raise the exception's
    traceback holds the iterator, so processes forked for a run that has stopped would live on, holding their
    memory and a copy of the run folder's lock, until a later garbage collection in whatever the process does by
    then.
    """
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        shutdown = getattr(iterator, "_shutdown_workers", None)  # absent with workers=0: nothing to end
        if shutdown is not None:
            shutdown()


def train_batches(dataset, batch_size: int, micro_batch: int, workers: int, seed: int, iteration: int,
                  rank: int = 0, world: int = 1):
    """Endless micro-batches of ``dataset`` from global iteration ``iteration`` on, as an uninterrupted run has
    them: epoch e's order drawn from ``(seed, e)``, this rank's share of each global batch of ``batch_size``."""
    wrapped = SkipBadSamples(dataset, seed)
    epoch, step = divmod(iteration, len(dataset) // batch_size)
    while True:
        wrapped.epoch = epoch
        sampler = EpochSampler(len(dataset), seed, epoch, step, batch_size, rank, world)
        with loading(make_loader(wrapped, micro_batch, workers, sampler, drop_last=True,
                                 seed=rank_seed(seed, rank, epoch))) as loader:
            yield from loader
        epoch, step = epoch + 1, 0
