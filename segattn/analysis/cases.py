"""The catalogues the benchmarks measure: every registered head, the attention blocks, the criss-cross op's
implementations, as :class:`segattn.analysis.benchmark.Case` lists, and the ratios their tables derive.

:mod:`.benchmark` has the measuring; this module says what is measured.
"""
import functools
from typing import List

import torch
from torch import nn

from .benchmark import Case
class Repeat(nn.Module):
    """One module applied ``times`` times with shared weights (the RCCA loop)."""

    def __init__(self, module: nn.Module, times: int):
        super().__init__()
        self.module, self.times = module, times

    def forward(self, x):
        for _ in range(self.times):
            x = self.module(x)
        return x


class Op(nn.Module):
    """A function as a module, so an op is measured as a block is."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


class TwoInputs(nn.Module):
    """A head that takes ``(layer3, layer4)`` as a module of two arguments, as the benchmarks call modules."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, layer3, layer4):
        return self.head((layer3, layer4))


def all_pairs_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Non-local style attention over all HxW positions, the same signature as the criss-cross op (unscaled, as
    the criss-cross op is; :func:`segattn.ops.full_attention.dense_attention` is the blocks' scaled form)."""
    b, c, h, w = v.shape
    attn = torch.softmax(torch.bmm(q.flatten(2).transpose(1, 2), k.flatten(2)), dim=-1)
    return torch.bmm(v.flatten(2), attn.transpose(1, 2)).view(b, c, h, w)


def head_cases(in_channels=2048, height=97, width=97, batch=1, channels=512, num_classes=19, recurrence=2):
    """Every registered decode head on layer4-sized features (default: the 769-crop Cityscapes case)."""
    from ..models import HEADS

    specs = {name: {"type": name, **({"recurrence": recurrence} if "recurrence" in HEADS.options(name) else {})}
             for name in HEADS.names()}
    cases = []
    for name, spec in specs.items():
        if HEADS[name].takes_layer3:  # layer3 too: half layer4's width at its resolution (a dilated ResNet)
            head = TwoInputs(HEADS.build(spec, "head", (in_channels // 2, in_channels), channels, num_classes))

            def inputs():
                return (torch.randn(batch, in_channels // 2, height, width),
                        torch.randn(batch, in_channels, height, width))
        else:
            head = HEADS.build(spec, "head", in_channels, channels, num_classes)

            def inputs():
                return (torch.randn(batch, in_channels, height, width),)
        cases.append(Case("head", name, head, inputs))
    return cases


def block_cases(channels=512, height=97, width=97, batch=1):
    """Every registered attention block (``ATTENTION``) with its defaults, on ``channels`` x H x W features.

    At least two images: a block that normalises pooled (1 x 1) features (SK's fuse) cannot train on one.
    """
    from ..models import ATTENTION

    batch = max(batch, 2)

    def inputs():
        return (torch.randn(batch, channels, height, width),)

    return [Case("registered-block", name, ATTENTION.build(name, "block", channels), inputs) for name in ATTENTION]


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
        Case("block", f"RCCA (R={recurrence})", Repeat(CrissCrossAttention(channels), recurrence), block_inputs),
        Case("block", f"reference-op RCCA (R={recurrence})",
             Repeat(CrissCrossAttention(channels, impl="reference"), recurrence), block_inputs),
        Case("block", "Non-local (dense, the paper's)", NonLocalBlock(channels, impl="dense"), block_inputs),
        Case("block", "Non-local (lean)", NonLocalBlock(channels), block_inputs),
        Case("op", "criss-cross (lean)", Op(lean), op_inputs),
        Case("op", "criss-cross (reference)", Op(reference), op_inputs),
        Case("op", "dense (non-local)", Op(all_pairs_attention), op_inputs),
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
                        module = Op(fn[scope] if scope in fn else _triton_op())
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
