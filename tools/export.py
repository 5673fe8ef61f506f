#!/usr/bin/env python
"""Export a trained checkpoint to ONNX: uint8 RGB images in, logits at the input size out.

    python tools/export.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        --output ccnet.onnx --dynamic
    python tools/export.py configs/ccnet.yaml --checkpoint best.pth --output ccnet.onnx --height 1024 --width 2048

Input ``image``: uint8 (B, H, W, 3), RGB. Output ``logits``: float32
(B, K, H, W); the argmax over K is the train-id label map. The graph holds the
normalisation, the resize to ``eval.scales[0]`` and back, and the network
(opset 17; the criss-cross op as matmul / where / softmax). ``--dynamic``
frees batch, height and width; otherwise the model takes H x W images only
(default: the training crop at the eval scale's inverse, e.g. 256 x 512 for
the demo). ``onnx.checker`` runs on the result. Run it with
``tools/infer.py --backend onnxruntime|openvino --model OUT.onnx``.
"""
import argparse

from segattn.cli import add_model_args, model_tool_config, parse_tool_args, require_checkpoint, run


def get_args_parser():
    p = add_model_args(argparse.ArgumentParser(description="Export a segmentation checkpoint to ONNX."))
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--height", type=int, help="input height of a static-shape model")
    p.add_argument("--width", type=int, help="input width of a static-shape model")
    p.add_argument("--dynamic", action="store_true", help="free batch, height and width")
    return p


def main(argv):
    args = parse_tool_args(get_args_parser(), argv)
    cfg, ckpt = model_tool_config(args, ["train.device=cpu"])  # exported from the CPU, whatever --device says
    require_checkpoint(args)
    from segattn.errors import MissingFileError

    try:
        from segattn.deploy.export import export_onnx, graph_operators
    except ImportError as err:
        raise MissingFileError(f"export needs the onnx package ({err}); pip install -e \".[deploy]\"") from None
    from segattn.engine.predictor import load_model

    scale = cfg.eval.scales[0]
    height = args.height or round(cfg.data.crop_size[0] / scale)
    width = args.width or round(cfg.data.crop_size[1] / scale)
    model, _ = load_model(cfg, args.checkpoint, "cpu", ckpt=ckpt)
    meta = export_onnx(model, cfg, args.output, height, width, args.dynamic)
    ops = ", ".join(sorted(graph_operators(args.output)))
    print(f"wrote {args.output}: {meta['segattn.head']}, {meta['segattn.num_classes']} classes, input "
          f"{meta['segattn.input']} uint8 RGB (B, H, W, 3) -> logits (B, K, H, W); onnx.checker passed; operators: {ops}")
    return 0


if __name__ == "__main__":
    run(main)
