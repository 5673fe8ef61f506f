#!/usr/bin/env python
"""Draw a grid of a split's images with their labels overlaid, as read or as the training augmentation makes them.

    python tools/browse_dataset.py configs/demo/ccnet.yaml --output grid.png
    python tools/browse_dataset.py configs/demo/ccnet.yaml --split train --augmented --num 8 --output augmented.png

Labels are drawn in the dataset's palette (unlabelled pixels left bare), with a
legend of the classes shown; label values that are not ids of the dataset
(a wrong label encoding, which training would read as ignore) are drawn as a
black-and-white checkerboard. ``--augmented`` applies the config's training
augmentation, each sample seeded by ``--seed`` and its index.
"""
import argparse

from segattn.cli import add_print_config, run
from segattn.configure import load_tool_config


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--split", default=None, help="split to browse (default: data.train_split)")
    p.add_argument("--augmented", action="store_true", help="after the training augmentation")
    p.add_argument("--num", type=int, default=8, help="how many samples (default 8)")
    p.add_argument("--seed", type=int, default=0, help="first sample index and augmentation seed")
    p.add_argument("--output", default="grid.png")
    add_print_config(p)
    args = p.parse_intermixed_args(argv)
    cfg = load_tool_config(args.config, args.overrides, print_config=args.print_config)

    from segattn.analysis.browse import browse_samples, grid_figure
    from segattn.data import build_dataset, train_transform
    from segattn.errors import ConfigError

    if args.num < 1:
        raise ConfigError(f"--num {args.num}: must be at least 1")
    split = args.split or cfg.data.train_split
    dataset = build_dataset(cfg.data, split)
    n = len(dataset)
    indices = [(args.seed + i) % n for i in range(min(args.num, n))]
    transform = train_transform(cfg.data) if args.augmented else None
    samples = browse_samples(dataset, indices, transform, args.seed, cfg.data.ignore_index, cfg.model.num_classes)
    what = "after the training augmentation" if args.augmented else "as read"
    grid_figure(samples, dataset.class_names, dataset.palette, args.output,
                f"{cfg.data.dataset} {split}: {len(samples)} of {n} samples, {what}", cfg.data.ignore_index)
    unknown = sum(int(s.unknown.any()) for s in samples)
    print(f"wrote {args.output} ({len(samples)} samples of {split}, {what}"
          + (f"; {unknown} with label values that are not ids of the dataset" if unknown else "") + ")")
    return 0


if __name__ == "__main__":
    run(main)
