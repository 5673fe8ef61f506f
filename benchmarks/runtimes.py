#!/usr/bin/env python
"""PyTorch against ONNX Runtime and OpenVINO on the same exported model, timed side by side on the CPU.

For each head the demo config's model (random weights) is wrapped as the
exported graph is (:class:`segattn.deploy.export.ImageToLogits`: uint8 image
in, logits at the input size out), exported at one static size, and run
three ways on the same image: PyTorch (eager, ``no_grad``), ONNX Runtime and
OpenVINO (float32). The logits are compared first (relative error <= 1e-4),
then each is timed, alternating between the three so that a slow moment of
the machine hits all of them; medians of ``repeats``.

    python benchmarks/runtimes.py --repeats 5     # needs pip install -e ".[deploy]"
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch

from _common import ROOT, add_common_args, write_results
from segattn.analysis.benchmark import alternating_medians, markdown_table
from segattn.config import load_config
from segattn.deploy.export import ImageToLogits, export_onnx
from segattn.deploy.runtimes import open_runtime
from segattn.models import build_model


def compare_runtimes(config: str, height: int, width: int, repeats: int = 5, warmup: int = 1) -> dict:
    cfg = load_config(config, ["model.encoder.weights=null"])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    wrapper = ImageToLogits(model, float(cfg.eval.scales[0])).eval()
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        export_onnx(model, cfg, path, height, width)
        runtimes = {r.backend: r for r in (open_runtime("onnxruntime", path), open_runtime("openvino", path))}
        x = torch.from_numpy(image)[None]

        def run_torch():
            with torch.no_grad():
                return wrapper(x)[0][0].numpy()  # the logits of the one image

        jobs = {"pytorch": run_torch, **{name: (lambda r=r: r.predict_image(image)) for name, r in runtimes.items()}}
        expected = run_torch()
        for name, job in jobs.items():
            err = float(np.abs(job() - expected).max() / np.abs(expected).max())
            if err > 1e-4:
                raise AssertionError(f"{config}: {name} differs from PyTorch by {err:.1e} (relative)")
        return alternating_medians(jobs, repeats, warmup)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]), repeats=5)
    p.add_argument("--heads", default="ccnet,danet,nonlocal,fcn", help="demo configs, configs/demo/<head>.yaml")
    p.add_argument("--image-size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    args = p.parse_args(argv)
    h, w = args.image_size
    rows = []
    for head in args.heads.split(","):
        print(f"[cpu] {head}: PyTorch, ONNX Runtime, OpenVINO, logits compared first ...", file=sys.stderr, flush=True)
        ms = compare_runtimes(os.path.join(ROOT, "configs", "demo", f"{head}.yaml"), h, w, args.repeats, args.warmup)
        rows.append({"name": f"{head} (configs/demo/{head}.yaml)", **{f"{k}_ms": v for k, v in ms.items()},
                     "ort_speedup": ms["pytorch"] / ms["onnxruntime"], "ov_speedup": ms["pytorch"] / ms["openvino"]})
    columns = [("name", "model"), ("pytorch_ms", "PyTorch ms"), ("onnxruntime_ms", "ONNX Runtime ms"),
               ("openvino_ms", "OpenVINO ms"), ("ort_speedup", "ORT speed-up"), ("ov_speedup", "OpenVINO speed-up")]
    table = markdown_table(rows, columns)
    print(f"\n### one {h}x{w} uint8 image -> logits, median of {args.repeats}\n\n{table}")
    write_results("runtimes", "cpu", rows, table, {"image_size": [h, w]}, args.output)


if __name__ == "__main__":
    sys.exit(main())
