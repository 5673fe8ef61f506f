#!/usr/bin/env python
"""Measure heads, the RCCA vs Non-local blocks and the criss-cross op; print a Markdown table.

    python tools/benchmark.py                      # 2048 x 97 x 97, CPU (and CUDA if present)
    python tools/benchmark.py --size 65 65 --json bench.json --device cpu
    python tools/benchmark.py --mode op            # criss-cross implementations (CUDA if present)

Numbers are taken in one run, so read them as ratios between rows.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import warnings  # noqa: E402

import torch  # noqa: E402

# FLOP counting installs a global module hook, which torch.compile warns about harmlessly
warnings.filterwarnings("ignore", message="Using `torch.compile")

from segattn.analysis.benchmark import (  # noqa: E402
    attention_cases, head_cases, markdown_table, measure, op_cases, paper_ratios, relative_to_reference)

OP_COLUMNS = [("group", "group"), ("name", "impl: dtype B x C x H x W"), ("fwd_ms", "fwd ms"),
              ("fwd_bwd_ms", "fwd+bwd ms"), ("speedup_fwd_bwd", "fwd+bwd speed-up"), ("peak_mb", "peak MB"),
              ("memory_vs_reference", "peak vs reference"), ("act_mb", "saved act. MB")]


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["paper", "op"], default="paper",
                   help="paper: heads, RCCA vs Non-local, ops; op: criss-cross implementations")
    p.add_argument("--channels", type=int, default=2048, help="encoder feature channels (layer4)")
    p.add_argument("--size", type=int, nargs=2, default=[97, 97], metavar=("H", "W"), help="feature size")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", action="append", help="cpu / cuda; repeatable (default: cpu, plus cuda if present)")
    p.add_argument("--groups", default="head,block,op", help="comma list of head, block, op")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--peers", choices=["mmcv"], help="also time mmcv's CCNet module beside ours (same weights, "
                   "outputs compared first)")
    p.add_argument("--json", help="also write the rows and ratios to this JSON file")
    return p


def run_op_mode(args):
    device = (args.device or ["cuda" if torch.cuda.is_available() else "cpu"])[0]
    rows = []
    for case in op_cases(device):
        print(f"[{device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
        rows.append(measure(case, device, args.repeats, args.warmup))
    rows = relative_to_reference(rows)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    print(f"\n### criss-cross implementations on {device} ({name})\n")
    print(markdown_table(rows, OP_COLUMNS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json}")


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.mode == "op":
        return run_op_mode(args)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    groups = set(args.groups.split(","))
    h, w = args.size
    result = {"size": [args.channels, h, w], "batch": args.batch, "devices": {}}
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit(f"error: --device {device} asked for but torch sees no CUDA device")
        cases = []
        if "head" in groups:
            cases += head_cases(args.channels, h, w, args.batch)
        cases += [c for c in attention_cases(512, h, w, args.batch) if c.group in groups]
        if args.peers:
            from segattn.analysis.peers import peer_cases

            cases += peer_cases(512, h, w, args.batch)
        rows = []
        for case in cases:
            print(f"[{device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
            rows.append(measure(case, device, args.repeats, args.warmup))
        ratios = paper_ratios(rows)
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        result["devices"][device] = {"name": name, "rows": rows, "ratios": ratios}
        print(f"\n### {device} ({name}), batch {args.batch}, features {args.channels} x {h} x {w}\n")
        print(markdown_table(rows))
        if ratios:
            print(f"\nRCCA vs Non-local block: Non-local needs {ratios['nonlocal_over_rcca_inference_memory']:.1f}x "
                  f"the inference peak memory of RCCA (paper: 11x) and saves "
                  f"{ratios['nonlocal_over_rcca_act_memory']:.1f}x its memory for backward; RCCA needs "
                  f"{100 * ratios['rcca_flops_reduction']:.1f}% fewer FLOPs (paper: 85%)")
            if "nonlocal_over_rcca_peak_memory" in ratios:
                print(f"peak CUDA memory ratio Non-local / RCCA: {ratios['nonlocal_over_rcca_peak_memory']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
