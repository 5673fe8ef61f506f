#!/usr/bin/env python
"""The criss-cross implementations side by side: reference, lean, torch.compile of the reference, Triton.

    python benchmarks/op.py --device cuda                 # B=4, Cq=64, C=512, 97x97 and 129x257
    TRITON_INTERPRET=1 python benchmarks/op.py --device cpu --memory-only --batch 1 --size 97 97 --groups op \\
        --impls reference,lean,triton                     # what each op allocates, the kernel under the interpreter

Each row: forward and forward+backward time, peak memory (CUDA), the op's extra
memory (a forward+backward's peak less its output and input gradients) and
what it saves for backward; q, k, v in NCHW and channels-last. Ratios are
against the reference row of the same case.
"""
import argparse
import os
import sys

import torch

from _common import add_common_args, write_results
from segattn.analysis.benchmark import markdown_table, measure
from segattn.analysis.cases import OP_GROUPS, OP_IMPLS, op_cases, relative_to_reference

COLUMNS = [("group", "group"), ("name", "impl: dtype B x C x H x W"), ("fwd_ms", "fwd ms"),
           ("fwd_bwd_ms", "fwd+bwd ms"), ("speedup_fwd_bwd", "fwd+bwd speed-up"), ("peak_mb", "peak MB"),
           ("memory_vs_reference", "peak vs reference"), ("extra_mb", "op extra MB"),
           ("extra_vs_reference", "extra vs reference"), ("act_mb", "saved act. MB")]
MEMORY_COLUMNS = [c for c in COLUMNS if c[0] in ("group", "name", "extra_mb", "extra_vs_reference", "act_mb")]


def _names(p, flag, value, allowed):
    names = tuple(v.strip() for v in value.split(","))
    if set(names) - set(allowed):
        p.error(f"{flag} takes {', '.join(allowed)}; got {', '.join(sorted(set(names) - set(allowed)))}")
    return names


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, nargs=2, action="append", metavar=("H", "W"),
                   help="feature size, repeatable (default 97 97 and 129 257)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--channels", type=int, default=512, help="C of v")
    p.add_argument("--qk-channels", type=int, default=64, help="Cq of q and k")
    p.add_argument("--head-channels", type=int, default=2048, help="input channels of the RCCA head rows")
    p.add_argument("--groups", default=",".join(OP_GROUPS), help="comma list of " + ", ".join(OP_GROUPS))
    p.add_argument("--impls", default=",".join(OP_IMPLS), help="comma list of " + ", ".join(OP_IMPLS))
    p.add_argument("--memory-only", action="store_true", help="only the memory columns (no timing)")
    args = p.parse_args(argv)
    impls = _names(p, "--impls", args.impls, OP_IMPLS)
    groups = _names(p, "--groups", args.groups, OP_GROUPS)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch sees no CUDA device")
    interpret = args.device == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
    sizes = tuple(map(tuple, args.size)) if args.size else ((97, 97), (129, 257))
    rows = []
    for case in op_cases(args.device, batch=args.batch, qk_channels=args.qk_channels, channels=args.channels,
                         sizes=sizes, head_in=args.head_channels, impls=impls, interpret=interpret, groups=groups):
        print(f"[{args.device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
        rows.append(measure(case, args.device, args.repeats, args.warmup, memory_only=args.memory_only))
    rows = relative_to_reference(rows)
    table = markdown_table(rows, MEMORY_COLUMNS if args.memory_only else COLUMNS)
    print(f"\n### criss-cross implementations on {args.device}{' (Triton interpreter)' if interpret else ''}\n\n"
          f"{table}")
    write_results("op_memory" if args.memory_only else "op", args.device, rows, table,
                  {"interpreter": interpret}, args.output)


if __name__ == "__main__":
    sys.exit(main())
