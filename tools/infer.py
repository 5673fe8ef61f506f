#!/usr/bin/env python
"""Segment every image in a folder with a trained checkpoint.

    python tools/infer.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        --input my_images/ --output predictions/ [--recursive]
    python tools/infer.py configs/demo/ccnet.yaml --backend onnxruntime --model ccnet.onnx \
        --input my_images/ --output predictions/

With ``--backend onnxruntime|openvino`` the ONNX file of tools/export.py runs
instead of PyTorch (same files written; the config gives the palette and class
count).

For each image writes <stem>_pred.png (train ids), <stem>_color.png (palette)
and <stem>_overlay.jpg. Under torchrun the processes share the folder; a re-run
skips the images done before with the same weights and settings
(docs/deployment.md). An image that fails (unreadable, truncated, an error
inside the model) is reported with its name and skipped, the run goes on, and
the exit status is 1 at the end, with the list of failures.
"""
import argparse

from segattn.cli import add_backend_args, add_model_args, load_backend, model_tool_config, parse_tool_args, run


def get_args_parser():
    p = add_model_args(argparse.ArgumentParser(description="Run a segmentation checkpoint on a folder of images."),
                       device_help="cpu / cuda (default: CUDA when present)", checkpoint_required=False)
    add_backend_args(p)
    p.add_argument("--input", required=True, help="folder of images (png/jpg/jpeg/bmp/tif)")
    p.add_argument("--output", required=True, help="folder for the predictions")
    p.add_argument("--recursive", action="store_true", help="also images in sub-folders (layout kept)")
    return p


def main(argv):
    args = parse_tool_args(get_args_parser(), argv)
    cfg, ckpt = model_tool_config(args)

    from segattn.engine.predictor import resolve_device
    from segattn.engine.segmenter import Segmenter
    from segattn.engine.shards import process_device, process_share

    device = process_device(resolve_device(cfg.train.device))
    model, weights = load_backend(args, cfg, ckpt, device)
    segmenter = Segmenter(model, cfg, device, {"weights_file": weights})
    done, failed, skipped = segmenter.predict_folder(args.input, args.output, args.recursive, not args.no_progress)
    rank, world = process_share()
    who = f"process {rank + 1} of {world}: " if world > 1 else ""
    print(f"{who}{done} images segmented into {args.output}, {len(failed)} failed"
          + (f", {skipped} skipped (done before with the same weights and settings)" if skipped else ""))
    for path, reason in failed:
        print(f"  failed: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
