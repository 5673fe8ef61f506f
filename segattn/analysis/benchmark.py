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
import functools
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


def alternating_medians(jobs: Dict[str, Callable], repeats: int, warmup: int) -> Dict[str, float]:
    """Median wall ms of each job, the jobs run in turn each round, so a slow moment of the machine hits all."""
    for _ in range(warmup):
        for job in jobs.values():
            job()
    times = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
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


class _Repeat(nn.Module):
    """One module applied ``times`` times with shared weights (the RCCA loop)."""

    def __init__(self, module: nn.Module, times: int):
        super().__init__()
        self.module, self.times = module, times

    def forward(self, x):
        for _ in range(self.times):
            x = self.module(x)
        return x


class _Op(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Non-local style attention over all HxW positions, the same signature as the criss-cross op."""
    b, c, h, w = v.shape
    attn = torch.softmax(torch.bmm(q.flatten(2).transpose(1, 2), k.flatten(2)), dim=-1)
    return torch.bmm(v.flatten(2), attn.transpose(1, 2)).view(b, c, h, w)


def head_cases(in_channels=2048, height=97, width=97, batch=1, channels=512, num_classes=19, recurrence=2):
    """Every registered decode head on layer4-sized features (default: the 769-crop Cityscapes case)."""
    from ..models import HEADS

    specs = {name: {"type": name, **({"recurrence": recurrence} if "recurrence" in HEADS.options(name) else {})}
             for name in HEADS.names()}
    heads = {name: HEADS.build(spec, "head", in_channels, channels, num_classes) for name, spec in specs.items()}

    def inputs():
        return (torch.randn(batch, in_channels, height, width),)

    return [Case("head", name, head, inputs) for name, head in heads.items()]


def attention_cases(channels=512, height=97, width=97, batch=1, recurrence=2):
    """RCCA block vs Non-local block (the CCNet paper's comparison), the bare ops, and the all-pairs blocks
    (DANet's PAM, Non-local) lean against dense, in float32 and under bfloat16 autocast."""
    from ..models.attention.non_local import NonLocalBlock
    from ..models.heads.danet import PositionAttention
    from ..ops import CrissCrossAttention, criss_cross_attention

    qk = channels // 8
    lean, reference = (functools.partial(criss_cross_attention, impl=i) for i in ("lean", "reference"))

    def block_inputs():
        return (torch.randn(batch, channels, height, width),)

    def op_inputs():
        return (torch.randn(batch, qk, height, width), torch.randn(batch, qk, height, width),
                torch.randn(batch, channels, height, width))

    all_pairs = [Case("all-pairs", f"{name} ({impl}, {'bf16' if bf16 else 'fp32'})", block(channels, impl=impl),
                      block_inputs, bf16=bf16)
                 for name, block in (("DANet PAM", PositionAttention), ("Non-local", NonLocalBlock))
                 for bf16 in (False, True) for impl in ("dense", "lean")]
    return [
        Case("block", f"RCCA (R={recurrence})", _Repeat(CrissCrossAttention(channels), recurrence), block_inputs),
        Case("block", f"reference-op RCCA (R={recurrence})",
             _Repeat(CrissCrossAttention(channels, impl="reference"), recurrence), block_inputs),
        Case("block", "Non-local (dense, the paper's)", NonLocalBlock(channels, impl="dense"), block_inputs),
        Case("block", "Non-local (lean)", NonLocalBlock(channels), block_inputs),
        Case("op", "criss-cross (lean)", _Op(lean), op_inputs),
        Case("op", "criss-cross (reference)", _Op(reference), op_inputs),
        Case("op", "dense (non-local)", _Op(dense_attention), op_inputs),
        *all_pairs,
    ]


def paper_ratios(rows: List[dict]) -> dict:
    """The two numbers CCNet quotes for RCCA vs Non-local, memory ratio and FLOPs reduction, against the
    paper's dense Non-local block and against the lean one this library trains."""
    blocks = {r["name"]: r for r in rows if r["group"] == "block"}
    rcca = next((r for name, r in blocks.items() if name.startswith("RCCA")), None)
    ratios = {}
    for key, name in (("", "Non-local (dense, the paper's)"), ("lean_", "Non-local (lean)")):
        nl = blocks.get(name)
        if not (rcca and nl):
            continue
        ratios.update({f"{key}nonlocal_over_rcca_act_memory": nl["act_mb"] / rcca["act_mb"],
                       f"{key}nonlocal_over_rcca_inference_memory": nl["infer_mb"] / rcca["infer_mb"],
                       f"{key}rcca_flops_reduction": 1.0 - rcca["gflops"] / nl["gflops"]})
        if rcca.get("peak_mb") and nl.get("peak_mb"):
            ratios[f"{key}nonlocal_over_rcca_peak_memory"] = nl["peak_mb"] / rcca["peak_mb"]
    return ratios


def lean_over_dense(rows: List[dict]) -> List[dict]:
    """For each all-pairs block and precision, lean / dense of every measured column (below 1: lean is less)."""
    by_name = {r["name"]: r for r in rows if r["group"] == "all-pairs"}
    out = []
    for name, lean in by_name.items():
        dense = by_name.get(name.replace("(lean,", "(dense,"))
        if "(lean," not in name or dense is None:
            continue
        ratio = {"name": name.replace("lean, ", "")}
        for key in ("gflops", "fwd_ms", "fwd_bwd_ms", "act_mb", "infer_mb", "peak_mb"):
            if lean.get(key) and dense.get(key):
                ratio[key] = lean[key] / dense[key]
        out.append(ratio)
    return out


OP_IMPLS = ("reference", "lean", "compiled", "triton")


LAYOUTS = ("nchw", "channels_last")
OP_GROUPS = ("op", "rcca head")


def training_memory_format() -> torch.memory_format:
    """The memory format training runs in by default (``train.channels_last``), weights and images."""
    from ..config import TrainConfig
    from ..engine.device import memory_format

    return memory_format(TrainConfig().channels_last)


def op_cases(device, batch=4, qk_channels=64, channels=512, sizes=((97, 97), (129, 257)),
             dtypes=(torch.float32, torch.bfloat16), head_in=2048, impls=OP_IMPLS, interpret=False,
             layouts=LAYOUTS, groups=OP_GROUPS):
    """The criss-cross op and the RCCA head under each implementation.

    ``lean`` is the memory-lean PyTorch op, ``compiled`` is ``torch.compile`` of the reference. Triton needs CUDA
    (or ``interpret``: Triton's CPU interpreter, for dry runs); otherwise its rows are returned as ``None`` so the
    table says "not measured". Where Triton runs, float32 cases are measured as TF32 for every implementation
    (the kernel takes float32 only so), tagged ``float32/TF32``. The op takes q, k, v in each of ``layouts``:
    NCHW, and channels-last, the layout a model run channels-last hands it (its q/k/v convolutions keep the
    input's); the head runs once, in the memory format training uses by default (``train.channels_last``:
    weights and input), as a model would.
    """
    from ..models.heads.ccnet import RCCAHead
    from ..ops import set_impl
    from ..ops.lean import criss_cross_attention_lean
    from ..ops.reference import criss_cross_attention_reference

    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        raise ValueError(f"op_cases: layouts must be among {LAYOUTS}, got {sorted(unknown)}")
    is_cuda = torch.device(device).type == "cuda"
    fmt = training_memory_format()
    cases = []
    for dtype in dtypes:
        tf32 = dtype == torch.float32 and (is_cuda or interpret)
        for h, w in sizes:
            shape = f"{str(dtype).replace('torch.', '')}{'/TF32' if tf32 else ''} {batch}x{channels}x{h}x{w}"

            def head_inputs(h=h, w=w, dtype=dtype):
                return (torch.randn(batch, head_in, h, w, dtype=dtype).contiguous(memory_format=fmt),)

            wanted = [(layout, "op") for layout in layouts if "op" in groups]
            wanted += [(None, "rcca head")] if "rcca head" in groups else []
            for layout, group in wanted:
                tag = shape + (" channels-last" if layout == "channels_last" else "")
                op_fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format

                def op_inputs(h=h, w=w, dtype=dtype, op_fmt=op_fmt):
                    return tuple(torch.randn(batch, n, h, w, dtype=dtype).contiguous(memory_format=op_fmt)
                                 for n in (qk_channels, qk_channels, channels))

                inputs = op_inputs if group == "op" else head_inputs
                for impl in impls:
                    if impl == "triton" and not (is_cuda or interpret):
                        cases.append(Case(group, f"{impl}: {tag}", None, inputs))
                        continue
                    scope = {"compiled": "reference"}.get(impl, impl)
                    if group == "op":
                        fn = {"reference": criss_cross_attention_reference, "lean": criss_cross_attention_lean}
                        module = _Op(fn[scope] if scope in fn else _triton_op())
                    else:
                        module = set_impl(RCCAHead(head_in, channels, 19).to(dtype, memory_format=fmt), scope)
                    if impl == "compiled":
                        module = torch.compile(module)
                    cases.append(Case(group, f"{impl}: {tag}", module, inputs, tf32))
    return cases


def _triton_op():
    from ..ops.triton_kernels import criss_cross_attention_triton

    return criss_cross_attention_triton


def relative_to_reference(rows: List[dict]) -> List[dict]:
    """Add speed-up and memory ratios of each row against the reference row of its case."""
    refs = {(r["group"], r["name"].split(": ")[1]): r for r in rows if r["name"].startswith("reference:")}
    for r in rows:
        ref = refs.get((r["group"], r["name"].split(": ")[1]))
        if ref is None:
            continue
        if r.get("fwd_bwd_ms") and ref.get("fwd_bwd_ms"):
            r["speedup_fwd_bwd"] = ref["fwd_bwd_ms"] / r["fwd_bwd_ms"]
        if r.get("peak_mb") and ref.get("peak_mb"):
            r["memory_vs_reference"] = r["peak_mb"] / ref["peak_mb"]
        if r.get("extra_mb") is not None and ref.get("extra_mb"):
            r["extra_vs_reference"] = r["extra_mb"] / ref["extra_mb"]
    return rows
