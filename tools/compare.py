#!/usr/bin/env python
"""Train every given config under the same schedule and write one comparison table.

    python tools/compare.py configs/demo/{fcn,ccnet,danet,nonlocal,fcn_se,fcn_eca,fcn_cbam,fcn_sk}.yaml \
        --readme README.md [key=value overrides applied to every config]
    python tools/compare.py configs/probe/{fcn,ccnet_r1,ccnet,ccnet_r3,nonlocal,danet}.yaml --seeds 0,1,2

The runs and the table go into a folder of the comparison's own (``--out-dir``,
by default ``checkpoints/compare/<date-time>``): each run in ``<out-dir>/<experiment>``,
its logs in ``<out-dir>/runs``, the table as ``compare.md`` and its rows as
``compare.json``. With ``--seeds`` each config trains once per seed (``train.seed``, its own
experiment folder) and the table gives the mean and range. On the context
probe the table adds the accuracy where the key shares the pixel's row or
column and elsewhere.
"""
import argparse
import os
import shlex
import time

from segattn.cli import run
from segattn.configure import load_tool_config


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("items", nargs="+", help="config files, then key=value overrides for all of them")
    p.add_argument("--out-dir", default=None,
                   help="the comparison's folder: its runs, logs and table (default checkpoints/compare/<date-time>)")
    p.add_argument("--readme", help="also write the table between the compare markers of this file")
    p.add_argument("--seeds", default=None, help="comma-separated train.seed values: each config once per seed")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--print-config", action="store_true", help="print each resolved config as YAML and exit")
    args = p.parse_intermixed_args(argv)
    configs = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    if args.print_config:
        from omegaconf import OmegaConf

        for path in configs:
            print(f"# {path}\n{OmegaConf.to_yaml(load_tool_config(path, overrides), resolve=True)}", end="")
        return 0
    from segattn.analysis.compare import compare_row, markdown, out_dir_overrides, with_seed, write_into, write_results
    from segattn.errors import ConfigError

    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. --seeds 0,1,2") from None
    out_dir = args.out_dir or os.path.join("checkpoints", "compare", time.strftime("%Y%m%d-%H%M%S"))
    for path in configs:  # every config checked before the first one trains
        load_tool_config(path, out_dir_overrides(out_dir) + overrides)
    rows = []
    for path in configs:
        for seed in seeds:
            cfg = load_tool_config(path, out_dir_overrides(out_dir) + overrides)
            if seed is not None:
                cfg = with_seed(cfg, seed)
            print(f"== {path}" + ("" if seed is None else f" (seed {seed})"), flush=True)
            rows.append(compare_row(cfg, os.path.splitext(os.path.basename(path))[0], not args.no_progress))
    table = markdown(rows)
    print(table)
    command = "python tools/compare.py " + shlex.join(argv)
    print("wrote " + ", ".join(write_results(out_dir, rows, table, command)) + f" (runs in {out_dir}/)")
    if args.readme:
        write_into(args.readme, table, command)
        print(f"wrote the table into {args.readme}")
    return 0


if __name__ == "__main__":
    run(main)
