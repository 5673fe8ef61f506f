#!/usr/bin/env python
"""int8 against float on the CPU: each demo-trained head exported, quantized, timed and evaluated, every path a user has.

    python benchmarks/int8.py                                   # CCNet (trained first where no checkpoint is found)
    python benchmarks/int8.py --heads ccnet,danet,fcn --calibration-images 32 --keep-float Softmax

For each head: its demo checkpoint (``<checkpoints>/demo_<head>/best.pth``,
else trained here with ``tools/train.py configs/demo/<head>.yaml``; random
weights say nothing about quantization), exported by ``tools/export.py`` at
the demo images' 256 x 512, as float and with ``--int8``. Five paths then
segment the same val image, in turn each round so that a slow moment of the
machine hits all, each after a second's rest (the previous path's worker
threads spin on after it returns and would slow the next) and one untimed
call (the time of an image in a stream, not of the first after a pause),
medians of ``--repeats``: PyTorch as the tools run it
(float32 in ``eval.channels_last``'s format: ``predict_labels``), ONNX Runtime
float32 and int8, OpenVINO float32 and int8, each on ``--threads`` threads.
Every path is then evaluated on the demo val split as ``tools/eval.py`` does
(mIoU), and its labels compared pixel by pixel with the float export's.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch

from _common import ROOT, add_common_args, write_results

PATHS = ("pytorch", "ort_fp32", "ort_int8", "ov_fp32", "ov_int8")


def add_demo_args(parser):
    """What a script measuring the demo-trained heads takes: which heads, where their checkpoints are, the threads
    of every path and the demo configs' overrides."""
    parser.add_argument("--heads", default="ccnet", help="comma list of heads with a configs/demo/<head>.yaml")
    parser.add_argument("--checkpoints", default=os.path.join(ROOT, "checkpoints"),
                        help="where demo_<head>/best.pth are looked for (default checkpoints/)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every path (torch's too)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every demo config (data.root=..., say)")
    return parser


def checkpoint(head: str, folder: str, tmp: str, overrides=()) -> str:
    """The demo checkpoint of ``head``: ``folder``'s, or one trained now as the README's first run trains it."""
    path = os.path.join(folder, f"demo_{head}", "best.pth")
    if os.path.isfile(path):
        return path
    print(f"[cpu] no {path}: training configs/demo/{head}.yaml ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "tools/train.py", f"configs/demo/{head}.yaml", "--no-progress",
                    f"train.out_dir={tmp}/checkpoints", f"train.log_dir={tmp}/runs", *overrides], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(tmp, "checkpoints", f"demo_{head}", "best.pth")


def export(config: str, ckpt: str, out: str, overrides, *extra):
    subprocess.run([sys.executable, "tools/export.py", config, *overrides, "--checkpoint", ckpt, "--output", out,
                    "--height", "256", "--width", "512", *extra], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def measure(head: str, args, tmp: str) -> dict:
    from segattn.analysis.benchmark import alternating_medians
    from segattn.configure import load_tool_config
    from segattn.data import build_dataset
    from segattn.data.io import read_image
    from segattn.deploy.runtimes import open_runtime
    from segattn.engine.evaluator import evaluate
    from segattn.engine.predictor import load_model, predict_labels

    config = os.path.join(ROOT, "configs", "demo", f"{head}.yaml")
    ckpt = checkpoint(head, args.checkpoints, tmp, args.overrides)
    fp32, int8 = os.path.join(tmp, f"{head}.onnx"), os.path.join(tmp, f"{head}-int8.onnx")
    export(config, ckpt, fp32, args.overrides)
    export(config, ckpt, int8, args.overrides, "--int8", "--calibration-images", str(args.calibration_images), "--keep-float",
           args.keep_float)
    cfg = load_tool_config(config, [*args.overrides, "train.device=cpu"])
    model, _ = load_model(cfg, ckpt, "cpu")
    paths = {"pytorch": model, "ort_fp32": open_runtime("onnxruntime", fp32, args.threads),
             "ort_int8": open_runtime("onnxruntime", int8, args.threads),
             "ov_fp32": open_runtime("openvino", fp32, args.threads),
             "ov_int8": open_runtime("openvino", int8, args.threads)}
    dataset = build_dataset(cfg.data, cfg.data.val_split)
    image = read_image(dataset.load(0)[2])
    jobs = {name: (lambda m=m: predict_labels(m, cfg, image, "cpu")) for name, m in paths.items()}
    # three thread pools in one process: a rest before each path, then one untimed call (as images stream)
    ms = alternating_medians(jobs, args.repeats, args.warmup, pause_s=1.0, settle=1)
    row = {"head": head, "checkpoint": ckpt, **{f"{k}_ms": v for k, v in ms.items()}}
    for name, m in paths.items():
        print(f"[cpu] {head}: {name} on the val split ...", file=sys.stderr, flush=True)
        row[f"{name}_miou"] = 100 * evaluate(m, dataset, cfg, "cpu", progress=False)["mIoU"]
    row.update({f"{name}_same": v for name, v in labels_same(paths, cfg, dataset, "ort_fp32").items()})
    return row


def labels_same(models: dict, cfg, dataset, reference: str) -> dict:
    """``{name: % of the split's pixels whose label equals the reference model's}``, each image as the tools
    predict it (``predict_labels``)."""
    import numpy as np

    from segattn.data.io import read_image
    from segattn.engine.predictor import predict_labels

    same, total = {name: 0 for name in models}, 0
    for i in range(len(dataset)):
        image = read_image(dataset.load(i)[2])
        labels = {name: predict_labels(m, cfg, image, "cpu") for name, m in models.items()}
        total += labels[reference].size
        for name in models:
            same[name] += int(np.count_nonzero(labels[name] == labels[reference]))
    return {name: 100 * same[name] / total for name in models}


def table(rows: list) -> str:
    lines = ["| head | path | ms | x ONNX Runtime fp32 | x PyTorch | val mIoU | labels as fp32 export % |",
             "|---|---|---|---|---|---|---|"]
    names = {"pytorch": "PyTorch (tools' eval, float32)", "ort_fp32": "ONNX Runtime float32",
             "ort_int8": "ONNX Runtime int8", "ov_fp32": "OpenVINO float32", "ov_int8": "OpenVINO int8"}
    for r in rows:
        if "error" in r:  # one head that failed, said in the table; the others measured
            lines.append(f"| {r['head']} | failed: {r['error']} | | | | | |")
            continue
        for p in PATHS:
            lines.append(f"| {r['head']} | {names[p]} | {r[p + '_ms']:.1f} | {r['ort_fp32_ms'] / r[p + '_ms']:.2f} | "
                         f"{r['pytorch_ms'] / r[p + '_ms']:.2f} | {r[p + '_miou']:.2f} | {r[p + '_same']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=5)
    add_demo_args(p)
    p.add_argument("--calibration-images", type=int, default=32)
    p.add_argument("--keep-float", default="Softmax")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, ROOT)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for head in args.heads.split(","):
            print(f"[cpu] {head}: export, int8, five paths timed and evaluated ...", file=sys.stderr, flush=True)
            try:
                rows.append(measure(head, args, tmp))
            except Exception as err:  # noqa: BLE001 - one head's failure must not lose the others' rows
                from segattn.errors import first_line

                error = f"{type(err).__name__}: {first_line(err, 300)}"
                print(f"[cpu] {head} failed: {error}", file=sys.stderr, flush=True)
                rows.append({"head": head, "error": error})
    text = table(rows) + (f"\n\nOne 256 x 512 demo val image, median of {args.repeats}, {args.threads} threads; int8: "
                          f"{args.calibration_images} calibration images of the train split, float: {args.keep_float}; "
                          "mIoU on the demo val split.")
    print(text)
    write_results("int8", "cpu", rows, text, {"calibration_images": args.calibration_images,
                                              "keep_float": args.keep_float, "threads": args.threads}, args.output)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
