#!/usr/bin/env python
"""Export a trained checkpoint to ONNX: uint8 RGB images in, logits at the input size out.

    python tools/export.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        --output ccnet.onnx --dynamic
    python tools/export.py configs/ccnet.yaml --checkpoint best.pth --output ccnet.onnx --height 1024 --width 2048
    python tools/export.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        --output ccnet-int8.onnx --int8 --calibration-images 32

Input ``image``: uint8 (B, H, W, 3), RGB. Output ``logits``: float32
(B, K, H, W); the argmax over K is the train-id label map. The graph holds the
normalisation, the resize to ``eval.scales[0]`` and back, and the network
(opset 17; the criss-cross op as matmul / where / softmax). ``--dynamic``
frees batch, height and width; otherwise the model takes H x W images only
(default: the training crop at the eval scale's inverse, e.g. 256 x 512 for
the demo). ``onnx.checker`` runs on the result. Run it with
``tools/infer.py --backend onnxruntime|openvino --model OUT.onnx`` (or
``tools/eval.py`` with the same two options, for its mIoU).

``--int8`` writes the model quantized to int8 instead (ONNX Runtime's static
QDQ quantization, :mod:`segattn.deploy.quantize`): ranges from
``--calibration-images`` images of the train split (``data.train_split``),
the operator types of ``--keep-float`` left in float32. Both runtimes run it.
"""
import argparse

from segattn.cli import add_model_args, model_tool_config, parse_tool_args, require_checkpoint, run


def get_args_parser():
    p = add_model_args(argparse.ArgumentParser(description="Export a segmentation checkpoint to ONNX."))
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--height", type=int, help="input height of a static-shape model")
    p.add_argument("--width", type=int, help="input width of a static-shape model")
    p.add_argument("--dynamic", action="store_true", help="free batch, height and width")
    p.add_argument("--int8", action="store_true", help="write the model quantized to int8 (static, QDQ)")
    p.add_argument("--calibration-images", type=int, default=32, metavar="N",
                   help="with --int8: train-split images the activation ranges come from (default 32)")
    p.add_argument("--keep-float", default="Softmax", metavar="OPS",
                   help="with --int8: comma list of ONNX operator types left in float32 (default Softmax; 'none')")
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
    if not args.int8:
        meta = export_onnx(model, cfg, args.output, height, width, args.dynamic)
    else:
        meta = export_int8(model, cfg, args, height, width)
    ops = ", ".join(sorted(graph_operators(args.output)))
    precision = (f"int8 (calibrated on {meta['segattn.calibration_images']} images of {cfg.data.train_split}, "
                 f"float: {meta['segattn.float_ops']}); " if args.int8 else "")
    print(f"wrote {args.output}: {meta['segattn.head']}, {meta['segattn.num_classes']} classes, input "
          f"{meta['segattn.input']} uint8 RGB (B, H, W, 3) -> logits (B, K, H, W), labels (B, H, W); {precision}"
          f"onnx.checker passed; operators: {ops}")
    return 0


def export_int8(model, cfg, args, height, width) -> dict:
    """The float export in a temporary folder, then its int8 form at ``--output``."""
    import os
    import tempfile

    from segattn.data import build_dataset
    from segattn.deploy.export import export_onnx
    from segattn.deploy.quantize import calibration_images, check_keep_float, quantize_onnx

    keep = [] if args.keep_float.strip().lower() == "none" else [t.strip() for t in args.keep_float.split(",") if t]
    check_keep_float(keep)  # the options first: a mistake is said before minutes of calibration
    dataset = build_dataset(cfg.data, cfg.data.train_split, need_labels=False)
    images = calibration_images(dataset, args.calibration_images, None if args.dynamic else (height, width),
                                cfg.train.seed)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "float.onnx")
        export_onnx(model, cfg, fp32, height, width, args.dynamic)
        return quantize_onnx(fp32, args.output, images, keep)


if __name__ == "__main__":
    run(main)
