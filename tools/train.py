#!/usr/bin/env python
"""Train a segmentor from a YAML config, with key=value overrides.

    python tools/train.py configs/demo/ccnet.yaml
    python tools/train.py configs/ccnet.yaml train.max_iters=200 model.head.recurrence=1
    python tools/train.py configs/ccnet.yaml --resume            # continue from last.pth
"""
import argparse

from segattn.cli import add_print_config, run
from segattn.configure import load_tool_config


def get_args_parser():
    p = argparse.ArgumentParser(description="Train a segmentation model.")
    p.add_argument("config", help="YAML config, e.g. configs/ccnet.yaml")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. train.max_iters=200")
    p.add_argument("--resume", nargs="?", const=True, default=None,
                   help="resume from the experiment's last.pth, or from the given checkpoint")
    p.add_argument("--allow-changes", action="store_true",
                   help="with --resume: go on with a config that trains differently from the checkpoint's "
                        "(new lr, schedule, ...); without it such a resume is refused")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_print_config(p)
    return p


def main(argv):
    args = get_args_parser().parse_intermixed_args(argv)
    cfg = load_tool_config(args.config, args.overrides, print_config=args.print_config)
    from segattn.engine.trainer import train

    metrics = train(cfg, resume=args.resume, progress=not args.no_progress, allow_changes=args.allow_changes)
    return 0 if metrics else 1


if __name__ == "__main__":
    run(main)
