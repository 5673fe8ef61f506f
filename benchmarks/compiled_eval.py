#!/usr/bin/env python
"""Compiled against eager inference on the CPU: what ``eval.compile`` buys per image, what it costs once.

    python benchmarks/compiled_eval.py                       # CCNet (trained first where no checkpoint is found)
    python benchmarks/compiled_eval.py --heads ccnet,danet,nonlocal,fcn

For each head: its demo checkpoint (as ``benchmarks/int8.py`` finds or trains
it) in ``eval.channels_last``'s format, segmenting one 256 x 512 demo val image
as the tools do (``predict_labels``: normalisation, the model, the resize to
the image, softmax, argmax) three ways, in turn each round: eager,
``torch.compile`` with its default options, and compiled as ``eval.compile``
compiles (:data:`segattn.engine.compiled.OPTIONS`: Inductor's freezing, the
weights folded in as constants: BatchNorm folded into the convolutions,
oneDNN's weight prepacking). Each compile time
is its first call's time less an eager image's, with an empty Inductor cache
(as on a machine that never compiled the model; a warm cache is faster). Labels of every val image are
compared with eager's; "repaid after" is the images a run needs before the
compile time is saved.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

from _common import ROOT, add_common_args, write_results
from int8 import add_demo_args, checkpoint, labels_same

VARIANTS = {"eager": None, "compiled": {}, "frozen": "eval.compile"}


def measure(head: str, args, tmp: str) -> dict:
    from segattn.analysis.benchmark import alternating_medians
    from segattn.configure import load_tool_config
    from segattn.data import build_dataset
    from segattn.data.io import read_image
    from segattn.engine.compiled import OPTIONS
    from segattn.engine.predictor import load_model, predict_labels

    config = os.path.join(ROOT, "configs", "demo", f"{head}.yaml")
    ckpt = checkpoint(head, args.checkpoints, tmp, args.overrides)
    cfg = load_tool_config(config, [*args.overrides, "train.device=cpu"])
    model, _ = load_model(cfg, ckpt, "cpu")
    dataset = build_dataset(cfg.data, cfg.data.val_split)
    image = read_image(dataset.load(0)[2])
    run = lambda m: predict_labels(m, cfg, image, "cpu")  # noqa: E731
    for _ in range(2):
        run(model)
    start = time.perf_counter()
    run(model)
    eager_s = time.perf_counter() - start
    models, row = {"eager": model}, {"head": head, "checkpoint": ckpt}
    for name, options in VARIANTS.items():
        if options is None:
            continue
        torch._dynamo.reset()  # each variant compiles from nothing, as a first run on a new machine does
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=tmp)
        models[name] = torch.compile(model, options=OPTIONS if options == "eval.compile" else options)
        start = time.perf_counter()
        run(models[name])
        row[f"{name}_compile_s"] = time.perf_counter() - start - eager_s
    ms = alternating_medians({n: (lambda m=m: run(m)) for n, m in models.items()}, args.repeats, args.warmup)
    row.update({f"{n}_ms": v for n, v in ms.items()})
    row.update({f"{n}_same": v for n, v in labels_same(models, cfg, dataset, "eager").items()})
    return row


def table(rows: list) -> str:
    lines = ["| head | path | ms | x eager | compile s | repaid after (images) | val labels as eager % |",
             "|---|---|---|---|---|---|---|"]
    names = {"eager": "eager (eval.compile=off)", "compiled": "compiled, default options",
             "frozen": "compiled, freezing (eval.compile=on)"}
    for r in rows:
        for n in VARIANTS:
            saved = r["eager_ms"] - r[n + "_ms"]
            compile_s = r.get(n + "_compile_s")
            repaid = "-" if compile_s is None else (f"{compile_s * 1e3 / saved:.0f}" if saved > 0 else "never")
            lines.append(f"| {r['head']} | {names[n]} | {r[n + '_ms']:.1f} | {r['eager_ms'] / r[n + '_ms']:.2f} | "
                         f"{'-' if compile_s is None else f'{compile_s:.1f}'} | {repaid} | {r[n + '_same']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]), repeats=7)
    add_demo_args(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, ROOT)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for head in args.heads.split(","):
            print(f"[cpu] {head}: eager, compiled, frozen ...", file=sys.stderr, flush=True)
            rows.append(measure(head, args, tmp))
    text = table(rows) + (f"\n\nOne 256 x 512 demo val image through `predict_labels` (float32, channels-last), "
                          f"median of {args.repeats}, {args.threads} threads; labels over the demo val split.")
    print(text)
    write_results("compiled_eval", "cpu", rows, text, {"threads": args.threads}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
