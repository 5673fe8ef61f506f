#!/usr/bin/env python
"""Convert another project's trained checkpoint into a segattn checkpoint for a config.

    python tools/convert_checkpoint.py mmseg ccnet_r50-d8_769x769_80k_cityscapes_20200617_010421-73eed8ca.pth \
        --config configs/mmseg/ccnet_r50-d8_769x769_80k_cityscapes.yaml --output checkpoints/ccnet_r50_mmseg.pth
    python tools/convert_checkpoint.py mmseg https://download.openmmlab.com/.../x.pth --config ... --output ...

SRC is a local file or an http(s) address (downloaded once into torch.hub's
cache). Every key of the source must map to one of the model's and every
weight of the model must be filled, with equal shapes; otherwise it stops with
one line naming the keys and writes nothing. The output is an ordinary
checkpoint: tools/eval.py, infer.py and visualize_attention.py take it with
the same config, and ``model.init_from=OUTPUT`` fine-tunes from it.
"""
import argparse
import os

from segattn.cli import add_print_config, parse_tool_args, run
from segattn.configure import load_tool_config
from segattn.errors import ConfigError, OutputError


def get_args_parser():
    p = argparse.ArgumentParser(description="Convert another project's checkpoint into a segattn checkpoint.")
    p.add_argument("format", choices=["mmseg"], help="the source's project: mmseg (mmsegmentation EncoderDecoder)")
    p.add_argument("source", help="checkpoint file or http(s) address")
    p.add_argument("--config", required=True, help="the segattn config of the same model, e.g. configs/mmseg/...")
    p.add_argument("--output", required=True, help="where to write the segattn checkpoint (.pth)")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")
    add_print_config(p)
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p


def main(argv):
    args = parse_tool_args(get_args_parser(), argv)
    from segattn.interop.convert import FORMATS, convert_checkpoint

    if not args.config:
        raise ConfigError("--config is required: the YAML of the model the checkpoint is converted into")
    if not args.output and not args.print_config:
        raise ConfigError("--output is required: the converted checkpoint's file name")
    if args.output and os.path.isdir(args.output):  # before the config is read: nothing to download or build
        raise OutputError(f"--output {args.output!r} is a folder; give the checkpoint's file name")
    if args.format not in FORMATS:
        raise ConfigError(f"unknown source format {args.format!r}; known: {', '.join(FORMATS)}")
    cfg = load_tool_config(args.config, args.overrides, print_config=args.print_config)
    convert_checkpoint(args.format, args.source, cfg, args.output, args.config, not args.no_progress)
    print(f"wrote {args.output}: {args.format} checkpoint {args.source} for {args.config}")
    return 0


if __name__ == "__main__":
    run(main)
