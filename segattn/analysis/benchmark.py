"""Measure parameters, FLOPs, time and memory of heads, blocks and the criss-cross op.

Every number is taken the same way for every case so ratios between rows are
meaningful:

* ``gflops``: forward FLOPs from ``torch.utils.flop_counter`` (matmuls and convs;
  softmax and elementwise work are not counted, as in the papers).
* ``fwd_ms`` / ``fwd_bwd_ms``: median wall time over ``repeats`` runs after a
  warm-up, synchronised on CUDA.
* ``act_mb``: bytes of the tensors autograd saves for backward in one training
  forward (unique storages; parameters and the inputs themselves excluded), from
  saved-tensor hooks: the activation memory training keeps, on any device.
* ``infer_mb``: peak memory allocated during one inference forward (no autograd)
  above what existed before it, the CCNet paper's comparison: the CUDA caching
  allocator's statistics on a GPU, the profiler's allocation events on a CPU.
* ``peak_mb`` (CUDA only): peak allocated memory of a forward + backward above
  what was allocated before it.
* ``extra_mb`` (ops, any device): what an op needs in one forward + backward
  beyond its output and the gradients it returns, the memory any op of the same
  signature must hold (``op_extra_bytes``).
"""
import gc
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class Case:
    """A thing to measure: ``module(*inputs())`` must return a tensor or a dict of them."""
    group: str
    name: str
    module: nn.Module
    inputs: Callable[[], tuple]
    tf32: bool = False  # float32 matmuls as TF32 while measured (forward and backward)
    bf16: bool = False  # measured under bfloat16 autocast (forward; backward runs in the dtypes it saved)


@contextmanager
def allow_tf32(enabled: bool):
    """``torch.backends.cuda.matmul.allow_tf32`` set for the block, restored after."""
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _total(out) -> torch.Tensor:
    if isinstance(out, dict):
        return sum(v.float().sum() for v in out.values())
    return out.float().sum()


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _count_cpu_flash_attention():
    """torch's FLOP counter knows the CUDA fused attention kernels, not the CPU flash one: the same formula."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_flop_count

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    if op in flop_registry or op.default in flop_registry:
        return

    @register_flop_formula(op)
    def cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)


_count_cpu_flash_attention()


def count_flops(module: nn.Module, inputs: tuple) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


def saved_activation_bytes(module: nn.Module, inputs: tuple, exclude=()) -> int:
    """Bytes autograd keeps for backward in one forward: unique storages, not parameters, not ``exclude``.

    ``exclude`` holds storage pointers (e.g. the inputs', which exist anyway).
    """
    skip = {p.untyped_storage().data_ptr() for p in module.parameters()} | set(exclude)
    seen = {}

    def pack(t):
        if t.device.type != "meta":
            s = t.untyped_storage()
            if s.data_ptr() not in skip:
                seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(*inputs)
    del out
    return sum(seen.values())


def time_ms(fn: Callable, device, repeats: int, warmup: int) -> float:
    """Median wall ms of ``fn``: on CUDA ``triton.testing.do_bench`` (L2 flushed before each run, at least
    ``repeats`` runs), elsewhere ``repeats`` timed runs after ``warmup``."""
    if torch.device(device).type == "cuda":
        try:
            from triton.testing import do_bench
        except ImportError:
            pass
        else:
            fn()  # compile / autotune outside the timed window
            single = max(do_bench(fn, warmup=1, rep=1, return_mode="median"), 1e-3)
            return do_bench(fn, warmup=max(25.0, warmup * single), rep=max(100.0, repeats * single),
                            return_mode="median")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def alternating_medians(jobs: Dict[str, Callable], repeats: int, warmup: int,
                        pause_s: float = 0.0, settle: int = 0) -> Dict[str, float]:
    """Median wall ms of each job, the jobs run in turn each round, so a slow moment of the machine hits all.

    ``pause_s``: rest before each timed job, for jobs with thread pools of their own (PyTorch's OpenMP, ONNX
    Runtime's, OpenVINO's): the previous job's workers spin on after it returns and would slow the next one.
    ``settle``: untimed calls of a job right before its timed one: after the rest, its own pool wakes from
    sleep and its data is out of the caches, which slowed a first call of a 15 ms job by a third; images
    streamed through a deployed model run back to back."""
    for _ in range(warmup):
        for job in jobs.values():
            job()
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            time.sleep(pause_s)
            for _ in range(settle):
                job()
            start = time.perf_counter()
            job()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_cpu_bytes(fn: Callable) -> int:
    """Peak of live bytes allocated by ``fn`` on the CPU, from the profiler's allocation/free events.

    Cyclic garbage of earlier work is collected first: freed inside ``fn``'s window, a tensor the profiler
    saw allocated in an earlier session would count as a negative event and lower the peak.
    """
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def peak_cuda_mb(fn: Callable, device) -> float:
    gc.collect()  # earlier work's cyclic garbage, freed inside fn's window, would lower the peak above the base
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def op_extra_bytes(module: nn.Module, inputs: tuple, device) -> int:
    """Peak memory of one forward + backward of an op beyond its output and the input gradients it returns.

    What any implementation of ``out = op(*inputs)`` must allocate is the output
    and one gradient per input; the rest is the op's own: saved attention,
    workspaces, layout copies. The output's gradient is made beforehand in the
    output's own layout, as the next layer of a network hands it over, so it
    is in neither the peak nor the subtraction. The peak is the CUDA caching
    allocator's on a GPU, the profiler's allocation events on a CPU (the same
    torch allocations; Triton's interpreter makes the kernels' own).
    """
    leaves = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
    seed = torch.ones_like(module(*leaves))  # a first run also compiles / warms up
    kept = {}

    def fwd_bwd():
        out = module(*leaves)
        out.backward(seed)
        kept["bytes"] = out.untyped_storage().nbytes() + sum(
            t.grad.untyped_storage().nbytes() for t in leaves if t.grad is not None)

    for t in leaves:
        t.grad = None
    if torch.device(device).type == "cuda":
        peak = peak_cuda_mb(fwd_bwd, device) * 2**20
    else:
        peak = peak_cpu_bytes(fwd_bwd)
    return int(peak - kept["bytes"])


def measure(case: Case, device="cpu", repeats: int = 3, warmup: int = 1, backward: bool = True,
            memory_only: bool = False) -> dict:
    """One row of the table; ``memory_only`` skips the timings, FLOPs and inference peak."""
    if case.module is None:  # cannot run here (e.g. a CUDA kernel on CPU): "not measured"
        return {"group": case.group, "name": case.name, "note": "not measured"}
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=case.bf16)
    with allow_tf32(case.tf32 or torch.backends.cuda.matmul.allow_tf32), autocast:
        return _measure(case, device, repeats, warmup, backward, memory_only)


def _measure(case: Case, device, repeats: int, warmup: int, backward: bool, memory_only: bool = False) -> dict:
    module = case.module.to(device).train()
    inputs = tuple(t.to(device) for t in case.inputs())
    grad_inputs = tuple(t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
    is_cuda = torch.device(device).type == "cuda"

    def fwd():
        with torch.no_grad():
            module(*inputs)

    def fwd_bwd():
        module.zero_grad(set_to_none=True)
        _total(module(*grad_inputs)).backward()

    row = {
        "group": case.group,
        "name": case.name,
        "params_m": sum(p.numel() for p in module.parameters()) / 1e6,
        "act_mb": saved_activation_bytes(module, grad_inputs,
                                         exclude={t.untyped_storage().data_ptr() for t in grad_inputs}) / 2**20,
    }
    if case.group == "op" and backward:
        row["extra_mb"] = op_extra_bytes(module, inputs, device) / 2**20
    if not memory_only:
        row.update({
            "gflops": count_flops(module, inputs) / 1e9,
            "infer_mb": peak_cuda_mb(fwd, device) if is_cuda else peak_cpu_bytes(fwd) / 2**20,
            "fwd_ms": time_ms(fwd, device, repeats, warmup),
            "fwd_bwd_ms": time_ms(fwd_bwd, device, repeats, warmup) if backward else None,
        })
    row["peak_mb"] = peak_cuda_mb(fwd_bwd, device) if is_cuda and backward else None  # backward=False: none run
    return row


def markdown_table(rows: List[dict], columns=None) -> str:
    columns = columns or [("group", "group"), ("name", "name"), ("params_m", "params (M)"),
                          ("gflops", "GFLOPs fwd"), ("fwd_ms", "fwd ms"), ("fwd_bwd_ms", "fwd+bwd ms"),
                          ("act_mb", "saved act. MB"), ("infer_mb", "inference peak MB"),
                          ("extra_mb", "op extra MB"), ("peak_mb", "train peak MB (CUDA)")]

    def fmt(v):
        if v is None:
            return "-"
        if v == "not measured":
            return v
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(k, r.get("note"))) if k not in ("group", "name") else fmt(r[k])
                                for k, _ in columns) + " |" for r in rows]
    return "\n".join(lines)
