#!/usr/bin/env python
"""mIoU of a per-pixel colour-only classifier (1x1 convolutions) on a config's val split.

    python tools/colour_floor.py configs/demo/ccnet.yaml

The floor a context model must clear on the demo data.
"""
import argparse

from segattn.cli import add_print_config, run
from segattn.configure import load_tool_config


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--no-progress", action="store_true")
    add_print_config(p)
    args = p.parse_intermixed_args(argv)
    cfg = load_tool_config(args.config, args.overrides, print_config=args.print_config)
    from segattn.data import build_dataset
    from segattn.analysis.baselines import colour_only_floor
    from segattn.engine.metrics import format_table

    train_set = build_dataset(cfg.data, cfg.data.train_split)
    val_set = build_dataset(cfg.data, cfg.data.val_split)
    metrics = colour_only_floor(train_set, val_set, cfg.model.num_classes, cfg.data.ignore_index, args.steps,
                                progress=not args.no_progress)
    print(format_table(metrics, val_set.class_names))
    print(f"colour-only floor: mIoU {100 * metrics['mIoU']:.2f}")
    return 0


if __name__ == "__main__":
    run(main)
