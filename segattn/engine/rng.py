"""Random state: seeding, per-rank seeds, and the states a checkpoint keeps for an exact resume."""
import random

import numpy as np
import torch


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, *parts: int) -> int:
    """A seed derived from ``seed`` and ``parts`` (rank, epoch ...): independent streams, reproducible."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


def rng_state() -> dict:
    """The global generators' states as plain tensors and lists (loadable with ``weights_only``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss]}


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
