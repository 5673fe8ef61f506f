#!/usr/bin/env python
"""Every inference path a segattn user has, against mmsegmentation's PyTorch eval of the same model on the CPU.

    python benchmarks/mmseg_deploy.py --heads ccnet,danet,nonlocal,fcn     # needs mmsegmentation and [deploy]

For each head, the ResNet-50-V1c D8 model of ``benchmarks/mmseg_models.py``:
mmsegmentation 1.2.2 builds it from its own config, ours is built from
``configs/mmseg/<same name>.yaml`` with mmseg's (random) weights converted, and
the two must give equal logits first. Each path then turns one uint8 RGB
demo val image (256 x 512) into labels at its size, in turn each round, each
after a second's rest (the runtimes' thread pools spin on), median of
``--repeats``:

- mmsegmentation: its normalisation (mean / std), ``encode_decode`` (the
  logits at the input size) and the argmax, in float32 PyTorch;
- segattn as ``tools/eval.py`` runs a checkpoint (``predict_labels``: channels-
  last, one whole pass at scale 1), eager and compiled as ``eval.compile=on``
  compiles (with freezing);
- the model exported by ``tools/export.py``'s code at that size, float32 and
  int8 (``--int8``: calibrated on ``--calibration-images`` demo train images,
  Softmax kept float), in ONNX Runtime and OpenVINO.

The weights are random, so the table says nothing of accuracy: the int8
accuracy on trained weights is ``benchmarks/int8.py``'s.
"""
import argparse
import copy
import os
import sys
import tempfile

import torch

from _common import ROOT, add_common_args, write_results
from mmseg_models import model_pair

PATHS = ("mmseg", "eager", "compiled", "ort_fp32", "ort_int8", "ov_fp32", "ov_int8")
NAMES = {"mmseg": "mmsegmentation {version} (PyTorch eval)", "eager": "segattn PyTorch (eval.compile=off)",
         "compiled": "segattn PyTorch (eval.compile=on)", "ort_fp32": "segattn ONNX Runtime float32",
         "ort_int8": "segattn ONNX Runtime int8", "ov_fp32": "segattn OpenVINO float32",
         "ov_int8": "segattn OpenVINO int8"}
SAME_SIZE = ["data.test_resize=null", "eval.mode=whole", "eval.scales=[1.0]", "eval.flip=false"]


def measure(head: str, args, tmp: str) -> dict:
    import numpy as np

    from segattn.analysis.benchmark import alternating_medians
    from segattn.config import apply_overrides
    from segattn.configure import load_tool_config
    from segattn.data import build_dataset
    from segattn.data.io import read_image
    from segattn.deploy.export import export_onnx
    from segattn.deploy.quantize import calibration_images, quantize_onnx
    from segattn.deploy.runtimes import open_runtime
    from segattn.engine.compiled import OPTIONS
    from segattn.engine.device import memory_format
    from segattn.engine.predictor import predict_labels
    from segattn.interop.mmseg_peer import mmseg_logits

    cfg, ours, theirs = model_pair(head, os.path.join(ROOT, "configs", "mmseg"))
    cfg = apply_overrides(cfg, SAME_SIZE)
    demo = load_tool_config(os.path.join(ROOT, "configs", "demo", "ccnet.yaml"), args.overrides)
    image = read_image(build_dataset(demo.data, demo.data.val_split).load(0)[2])
    if args.size:
        import cv2

        image = cv2.resize(image, tuple(args.size[::-1]), interpolation=cv2.INTER_LINEAR)
    size = image.shape[:2]
    fp32, int8 = os.path.join(tmp, f"{head}.onnx"), os.path.join(tmp, f"{head}-int8.onnx")
    export_onnx(copy.deepcopy(ours), cfg, fp32, *size)
    train = build_dataset(demo.data, demo.data.train_split)
    quantize_onnx(fp32, int8, calibration_images(train, args.calibration_images, size))
    ours = ours.eval().to(memory_format=memory_format(cfg.eval.channels_last))
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)

    def theirs_labels():
        with torch.no_grad():
            x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - mean) / std
            return mmseg_logits(theirs, x).argmax(1)[0].numpy().astype(np.uint8)

    models = {"eager": ours, "compiled": torch.compile(ours, options=OPTIONS),
              "ort_fp32": open_runtime("onnxruntime", fp32, args.threads),
              "ort_int8": open_runtime("onnxruntime", int8, args.threads),
              "ov_fp32": open_runtime("openvino", fp32, args.threads),
              "ov_int8": open_runtime("openvino", int8, args.threads)}
    jobs = {"mmseg": theirs_labels, **{n: (lambda m=m: predict_labels(m, cfg, image, "cpu")) for n, m in models.items()}}
    jobs["compiled"]()  # compiled outside the timed rounds
    ms = alternating_medians(jobs, args.repeats, args.warmup, pause_s=1.0)
    return {"head": head, "size": list(size), **{f"{p}_ms": ms[p] for p in PATHS}}


def table(rows: list) -> str:
    import mmseg

    lines = ["| model | path | ms | x mmsegmentation |", "|---|---|---|---|"]
    for r in rows:
        for p in PATHS:
            lines.append(f"| {r['head']} R-50-D8 | {NAMES[p].format(version=mmseg.__version__)} | {r[p + '_ms']:.1f} "
                         f"| {r['mmseg_ms'] / r[p + '_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]), repeats=5)
    p.add_argument("--heads", default="ccnet,danet,nonlocal,fcn")
    p.add_argument("--calibration-images", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="threads of every path (torch's too)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize the image (default: the demo's "
                   "256 x 512)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo config the image and the "
                   "calibration images come from (data.root=..., say)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for head in args.heads.split(","):
            print(f"[cpu] {head}: logits compared, exported, int8, seven paths timed ...", file=sys.stderr, flush=True)
            rows.append(measure(head, args, tmp))
    h, w = rows[0]["size"]
    text = table(rows) + (f"\n\nImage (uint8 RGB, {h} x {w}) to labels, median of {args.repeats}, {args.threads} "
                          f"threads, random weights (mmsegmentation's initialisation, converted); int8 calibrated on "
                          f"{args.calibration_images} demo train images, Softmax kept float.")
    print(text)
    write_results("mmseg_deploy", "cpu", rows, text, {"threads": args.threads,
                                                      "calibration_images": args.calibration_images}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
