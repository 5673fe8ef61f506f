#!/usr/bin/env python
"""Train every given config under the same schedule and write one comparison table.

    python tools/compare.py configs/demo/{fcn,ccnet,danet,nonlocal,fcn_se,fcn_eca,fcn_cbam,fcn_sk}.yaml \
        --readme README.md [key=value overrides applied to every config]
    python tools/compare.py configs/probe/{fcn,ccnet_r1,ccnet,ccnet_r3,nonlocal,danet}.yaml --seeds 0,1,2

With ``--seeds`` each config trains once per seed (``train.seed``, its own
experiment folder) and the table gives the mean and range. On the context
probe the table adds the accuracy where the key shares the pixel's row or
column and elsewhere.
"""
import argparse
import os

from segattn.cli import run
from segattn.configure import load_tool_config


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("items", nargs="+", help="config files, then key=value overrides for all of them")
    p.add_argument("--readme", help="write the table between the compare markers of this file")
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
    from segattn.analysis.compare import compare_row, markdown, with_seed, write_into
    from segattn.errors import ConfigError

    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. --seeds 0,1,2") from None
    rows = []
    for path in configs:
        for seed in seeds:
            cfg = load_tool_config(path, overrides)
            if seed is not None:
                cfg = with_seed(cfg, seed)
            print(f"== {path}" + ("" if seed is None else f" (seed {seed})"), flush=True)
            rows.append(compare_row(cfg, os.path.splitext(os.path.basename(path))[0], not args.no_progress))
    table = markdown(rows)
    print(table)
    if args.readme:
        write_into(args.readme, table, f"python tools/compare.py {' '.join(args.items)} --readme {args.readme}")
        print(f"wrote the table into {args.readme}")
    return 0


if __name__ == "__main__":
    run(main)
