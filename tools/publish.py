#!/usr/bin/env python
"""Turn a checkpoint into a pretrained folder (Hugging Face Hub layout), and optionally upload it.

    python tools/publish.py checkpoints/demo_ccnet/best.pth --output ccnet-demo/
    python tools/publish.py ccnet_r50.pth --config configs/mmseg/ccnet_r50-d8_769x769_80k_cityscapes.yaml \
        --output ccnet-r50-cityscapes/ --push user/ccnet-r50-cityscapes

The folder holds ``config.yaml`` (the checkpoint's own config, or ``--config``
with overrides), the weights alone as ``model-<sha256 prefix>.safetensors`` (no
optimizer, scheduler or RNG state; the prefix named as mmsegmentation's
``publish_model.py`` names its files, and checked on loading) and a model card
``README.md``. ``segattn.Segmenter.from_pretrained(FOLDER)`` loads it;
``--push REPO`` uploads it to the Hub (needs network and ``huggingface-cli login``).
"""
import argparse
import os

from segattn.cli import parse_tool_args, run
from segattn.configure import print_resolved


def get_args_parser():
    p = argparse.ArgumentParser(description="Write a checkpoint as a pretrained folder (config, safetensors, card).")
    p.add_argument("checkpoint", help="a .pth of tools/train.py or tools/convert_checkpoint.py")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--output", required=True,
                   help="folder to write: new, empty, or an earlier publish of the same model (its weights replaced)")
    p.add_argument("--config", help="YAML config (default: the one saved in the checkpoint)")
    p.add_argument("--title", help="the model card's title (default: head, encoder and dataset)")
    p.add_argument("--push", metavar="REPO", help="also upload the folder to this Hugging Face Hub repo")
    p.add_argument("--print-config", action="store_true", help="print the config the folder would hold and exit")
    return p


def push(folder: str, repo: str):
    from segattn.errors import MissingPackageError, OutputError, first_line

    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise MissingPackageError("--push needs huggingface_hub: pip install huggingface_hub") from None
    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        return api.upload_folder(folder_path=folder, repo_id=repo, commit_message="segattn: tools/publish.py")
    except Exception as err:  # noqa: BLE001 - offline, not logged in, no rights: one line, the folder stays
        first = first_line(err)
        raise OutputError(f"--push {repo}: upload failed ({type(err).__name__}: {first}); the folder {folder} is "
                          "written and can be pushed later") from None


def main(argv):
    args = parse_tool_args(get_args_parser(), argv)
    from segattn.engine.segmenter import Segmenter

    segmenter = Segmenter.from_checkpoint(args.checkpoint, args.config, "cpu", args.overrides)
    if args.print_config:
        print_resolved(segmenter.cfg)
    weights = segmenter.save_pretrained(args.output, hashed=True, title=args.title)
    size = os.path.getsize(weights) / 2 ** 20
    print(f"wrote {args.output}: config.yaml, {os.path.basename(weights)} ({size:.1f} MiB, weights only), README.md")
    print(f"load it with: segattn.Segmenter.from_pretrained({args.output!r})")
    if args.push:
        print(f"pushed to {push(args.output, args.push)}")
    return 0


if __name__ == "__main__":
    run(main)
