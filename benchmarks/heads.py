#!/usr/bin/env python
"""Heads, blocks, RCCA against Non-local, and the criss-cross op: parameters, FLOPs, time, saved and peak memory.

    python benchmarks/heads.py --batch 1                  # 2048 x 97 x 97 heads, 512 x 97 x 97 blocks and ops, CPU
    python benchmarks/heads.py --batch 2 --groups all-pairs   # DANet PAM and Non-local, lean against dense
    python benchmarks/heads.py --device cuda --size 129 257

The CCNet paper's comparison (RCCA with R=2 against the Non-local block:
memory and FLOPs) is printed under the table, against the paper's dense
Non-local block and the lean one, and the all-pairs blocks' lean / dense ratios.
The results file is ``heads-...`` for every group, ``heads_<group>_<group>-...`` for a choice. Rows are taken in one run, so
read the time columns as ratios.
"""
import argparse
import sys

import torch

from _common import add_common_args, write_results
from segattn.analysis.benchmark import markdown_table, measure
from segattn.analysis.cases import attention_cases, block_cases, head_cases, lean_over_dense, paper_ratios

# every registered head; every registered attention block; RCCA against Non-local; the op; the all-pairs blocks
GROUPS = ("head", "registered-block", "block", "op", "all-pairs")


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--channels", type=int, default=2048, help="encoder feature channels the heads take (layer4)")
    p.add_argument("--block-channels", type=int, default=512, help="channels of the blocks and the op's v")
    p.add_argument("--size", type=int, nargs=2, default=[97, 97], metavar=("H", "W"), help="feature size")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--groups", default=",".join(GROUPS), help="comma list of " + ", ".join(GROUPS))
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",")]
    if set(groups) - set(GROUPS):
        p.error(f"--groups takes {', '.join(GROUPS)}; got {', '.join(sorted(set(groups) - set(GROUPS)))}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: torch sees no CUDA device")
    h, w = args.size
    cases = head_cases(args.channels, h, w, args.batch) if "head" in groups else []
    cases += block_cases(args.block_channels, h, w, args.batch) if "registered-block" in groups else []
    cases += [c for c in attention_cases(args.block_channels, h, w, args.batch) if c.group in groups]
    rows = []
    for case in cases:
        print(f"[{args.device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
        rows.append(measure(case, args.device, args.repeats, args.warmup))
    table = markdown_table(rows)
    ratios = paper_ratios(rows)
    for key, which in (("", "the paper's dense Non-local block"), ("lean_", "the lean Non-local block")):
        if f"{key}rcca_flops_reduction" in ratios:
            table += (f"\n\nRCCA (R=2) against {which}: Non-local needs "
                      f"{ratios[f'{key}nonlocal_over_rcca_inference_memory']:.1f}x RCCA's inference peak memory "
                      f"(paper: 11x) and {ratios[f'{key}nonlocal_over_rcca_act_memory']:.1f}x its memory saved for "
                      f"backward; RCCA needs {100 * ratios[f'{key}rcca_flops_reduction']:.1f}% fewer FLOPs "
                      "(paper: 85%).")
    lean = lean_over_dense(rows)
    if lean:
        table += "\n\nAll-pairs blocks, lean / dense (below 1: the lean one needs less):\n\n" + markdown_table(
            lean, [("name", "block"), ("gflops", "GFLOPs"), ("fwd_ms", "fwd time"), ("fwd_bwd_ms", "fwd+bwd time"),
                   ("act_mb", "saved for backward"), ("infer_mb", "inference peak"), ("peak_mb", "train peak (CUDA)")])
    print(f"\n### batch {args.batch}, heads on {args.channels} x {h} x {w}, blocks and ops on "
          f"{args.block_channels} x {h} x {w}\n\n{table}")
    question = "heads" if set(groups) == set(GROUPS) else "heads_" + "_".join(g.replace("-", "") for g in groups)
    write_results(question, args.device, rows, table, {"ratios": ratios, "lean_over_dense": lean, "size": [h, w],
                                                      "batch": args.batch},
                  args.output)


if __name__ == "__main__":
    sys.exit(main())
