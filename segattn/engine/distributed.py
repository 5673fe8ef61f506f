"""torch.distributed in the open, as torchvision's reference scripts do it.

``torchrun --nproc_per_node=N tools/train.py CONFIG`` sets RANK / WORLD_SIZE /
LOCAL_RANK; ``init_distributed_mode`` reads them and joins the process group
(NCCL on CUDA, gloo on CPU). Without torchrun everything runs as one process.
"""
import os

import torch
import torch.distributed as dist


def init_distributed_mode(device_name: str = "auto"):
    """Returns ``(rank, world_size, device)``; a no-op ``(0, 1, device)`` outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def barrier():
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo takes CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_ranks(value: bool) -> bool:
    """True on every rank when ``value`` is true on every rank (e.g. the loss was finite everywhere)."""
    if not is_distributed():
        return value
    t = torch.tensor([1.0 if value else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def mean_over_ranks(values: dict) -> dict:
    """Each value averaged over the ranks (every rank passes the same keys): the logged loss of the global batch."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return {k: float(v) / get_world_size() for k, v in zip(keys, t.tolist())}


def gather_lists(items: list) -> list:
    """Every rank's ``items`` concatenated in rank order, on every rank (small Python objects)."""
    return [item for part in gather_objects(list(items)) for item in part]


def gather_objects(item) -> list:
    """Every rank's ``item`` in rank order, on every rank (``[item]`` in one process)."""
    if not is_distributed():
        return [item]
    out = [None] * get_world_size()
    dist.all_gather_object(out, item)
    return out
