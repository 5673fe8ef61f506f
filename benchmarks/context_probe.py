#!/usr/bin/env python
"""The reach table: six head configurations on the context probe, three seeds, accuracy split by where the key lies.

    python benchmarks/context_probe.py             # FCN, CCNet R = 1, 2, 3, Non-local, DANet; seeds 0, 1, 2
    python benchmarks/context_probe.py --probe pairs --configs fcn,gcnet,ccnet_r1   # the two-key probe

With ``--probe pairs`` the same configs train on the two-key probe
(``data.dataset=context_probe_pairs``), and the table gives the object accuracy:
25% is chance, 50% the best a global summary can do.

The same runs as ``python tools/compare.py configs/probe/{fcn,ccnet_r1,ccnet,
ccnet_r3,nonlocal,danet}.yaml --seeds 0,1,2`` (the functions that tool calls,
in one process), the probe generated into a temporary folder by the first run
(its seconds counted in that run's time), checkpoints and logs beside it. Each
row keeps its own wall time; the results file holds every run and the table
their mean and range.
"""
import argparse
import os
import sys
import tempfile
import time

from _common import ROOT, write_results

CONFIGS = ("fcn", "ccnet_r1", "ccnet", "ccnet_r3", "nonlocal", "danet")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--configs", default=",".join(CONFIGS), help="names under configs/probe/")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--probe", choices=("keys", "pairs"), default="keys",
                   help="keys: the first probe (one key); pairs: the two-key probe")
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run (a shorter schedule, say)")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from segattn.analysis.compare import compare_row, markdown, with_seed
    from segattn.configure import load_tool_config

    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = ([f"data.root={tmp}/context_probe"] if args.probe == "keys" else
                ["data.dataset=context_probe_pairs", f"data.root={tmp}/context_probe_pairs"])
        common = [*data, f"train.out_dir={tmp}/checkpoints", f"train.log_dir={tmp}/runs", *args.overrides]
        for name in args.configs.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                path = os.path.join(ROOT, "configs", "probe", f"{name}.yaml")
                cfg = with_seed(load_tool_config(path, common), seed)
                print(f"[cpu] configs/probe/{name}.yaml seed {seed} ...", file=sys.stderr, flush=True)
                rows.append(compare_row(cfg, name))
                last = rows[-1]
                scores = (f"row/column {100 * last['row_column']:.1f}%  elsewhere {100 * last['elsewhere']:.1f}%"
                          if args.probe == "keys" else f"objects {100 * last['objects']:.1f}%")
                print(f"  {scores}  in {rows[-1]['train_s']:.0f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - start
    slowest = max(rows, key=lambda r: r["train_s"])
    bound = "" if args.probe == "keys" else " A global summary of the image can reach 50% at best."
    table = (markdown(rows) + f"\n\nAccuracy over object pixels (the keys' own excluded); chance is 25%.{bound} "
             f"{len(rows)} runs in {total / 60:.1f} min, the longest {slowest['train_s']:.0f} s ({slowest['name']}, "
             f"seed {slowest['seed']}), each a training run and its evaluation.")
    print(table)
    write_results("context_probe" if args.probe == "keys" else "context_probe_pairs", "cpu", rows, table,
                  extra={"total_s": total}, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
