#!/usr/bin/env python
"""Save a PNG panel of what a trained head attends to, for chosen query pixels.

    python tools/visualize_attention.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth \
        --image data/demo/leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png \
        --query 60,100 --query 100,400 --output attention.png

Queries are (y, x) in image pixels; ``--grid N`` picks an N x N grid instead.
"""
import argparse

from segattn.cli import add_model_args, model_tool_config, parse_tool_args, require_checkpoint, run


def main(argv):
    p = add_model_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--image", required=True)
    p.add_argument("--query", action="append", default=[], help="y,x in image pixels (repeatable)")
    p.add_argument("--grid", type=int, default=0, help="use an N x N grid of queries instead")
    p.add_argument("--scale", type=float, default=None, help="resize the image first (default: eval.scales[0])")
    p.add_argument("--output", default="attention.png")
    args = parse_tool_args(p, argv)
    cfg, ckpt = model_tool_config(args)
    require_checkpoint(args)

    import cv2

    from segattn.errors import ConfigError

    from segattn.data import dataset_class_names, dataset_palette
    from segattn.data.io import read_image
    from segattn.data.transforms import normalize_image
    from segattn.analysis.attention_maps import attention_maps, save_panel
    from segattn.engine.predictor import load_model, resolve_device

    device = resolve_device(cfg.train.device)
    model, _ = load_model(cfg, args.checkpoint, device, ckpt=ckpt)
    image = original = read_image(args.image)
    scale = args.scale or cfg.eval.scales[0]
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    stride = cfg.model.encoder.output_stride
    fh, fw = (image.shape[0] - 1) // stride + 1, (image.shape[1] - 1) // stride + 1
    height, width = original.shape[:2]
    queries, pixels = [], []
    for q in args.query:
        try:
            y, x = (float(v) for v in q.split(","))
        except ValueError:
            raise ConfigError(f"--query {q!r}: expected y,x in image pixels") from None
        if not (0 <= y < height and 0 <= x < width):
            raise ConfigError(f"--query {q!r}: outside the image ({args.image} is {height} x {width} pixels, y,x from "
                              f"0,0 to {height - 1},{width - 1})")
        queries.append((min(fh - 1, int(y * scale) // stride), min(fw - 1, int(x * scale) // stride)))
        pixels.append((int(y), int(x)))
    if args.grid:
        cells = [(int((i + 0.5) * fh / args.grid), int((j + 0.5) * fw / args.grid))
                 for i in range(args.grid) for j in range(args.grid)]
        queries += cells
        pixels += [(min(height - 1, int((qy + 0.5) * stride / scale)), min(width - 1, int((qx + 0.5) * stride / scale)))
                   for qy, qx in cells]
    if not queries:
        queries, pixels = [(fh // 2, fw // 2)], [(height // 2, width // 2)]
    results = attention_maps(model, normalize_image(image)[None].to(device), queries)
    save_panel(args.output, image, results, dataset_palette(cfg.data), stride,
               pixels=pixels, class_names=dataset_class_names(cfg.data))
    print(f"wrote {args.output} ({len(queries)} queries)")
    return 0


if __name__ == "__main__":
    run(main)
