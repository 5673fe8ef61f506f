#!/usr/bin/env python
"""Scan a dataset for the problems that would break or silently spoil training.

    python tools/check_dataset.py configs/ccnet.yaml [--split train --split val]

Exit status 1 when anything is wrong.
"""
import argparse

from segattn.cli import add_print_config, run
from segattn.configure import load_tool_config


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--split", action="append", help="split(s) to check (default: train and val splits)")
    p.add_argument("--no-progress", action="store_true")
    add_print_config(p)
    args = p.parse_intermixed_args(argv)
    cfg = load_tool_config(args.config, args.overrides, print_config=args.print_config)
    from segattn.data import dataset_class
    from segattn.data.check import check_split

    dataset_class(cfg.data).prepare(cfg.data)  # a generated set (the demo, the probe) is made first, as training does
    ok = True
    for split in args.split or [cfg.data.train_split, cfg.data.val_split]:
        report = check_split(cfg.data, split, decode=True, progress=not args.no_progress)
        print(report)
        ok &= report.ok
    print("dataset OK" if ok else "dataset has problems (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    run(main)
