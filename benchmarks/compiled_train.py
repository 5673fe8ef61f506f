#!/usr/bin/env python
"""Compiled against eager training on the CPU: the demo's training step under ``torch.compile``, and over a run.

    python benchmarks/compiled_train.py                     # CCNet's demo recipe, float32 and bf16 autocast
    python benchmarks/compiled_train.py --config configs/demo/fcn.yaml --amp off

For each ``train.amp``: two :class:`segattn.engine.trainer.Trainer` of the
config (same seed, same weights), one eager, one whose network is compiled
(``torch.compile`` of the module, default options: forward and backward
through AOTAutograd and Inductor), each taking full training steps
(``train_step``: forward, losses, backward, SGD update) on the same demo batch,
in turn each round. The compile time is the first compiled step's time less an
eager step's, with an empty Inductor cache; "over a run" adds it to ``train.max_iters`` steps of each.
"""
import argparse
import os
import sys
import tempfile
import time

import torch

from _common import ROOT, add_common_args, write_results


def measure(args, amp: str, tmp: str) -> dict:
    from segattn.analysis.benchmark import alternating_medians
    from segattn.configure import load_tool_config
    from segattn.engine.trainer import Trainer

    trainers = {}
    for name in ("eager", "compiled"):
        cfg = load_tool_config(args.config, [*args.overrides, f"train.amp={amp}", "train.device=cpu",
                                             f"train.out_dir={tmp}/{amp}-{name}", f"train.log_dir={tmp}/runs"])
        trainers[name] = Trainer(cfg, progress=False)
    loaded = next(trainers["eager"].batches())
    batch = (loaded.images, loaded.masks)
    steps = {n: (lambda t=t: t.train_step([batch])) for n, t in trainers.items()}
    for _ in range(2):
        steps["eager"]()
    start = time.perf_counter()
    steps["eager"]()
    eager_s = time.perf_counter() - start
    torch._dynamo.reset()  # compiled from nothing, as a first run on a new machine does
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=tmp)
    trainers["compiled"].net.compile()
    start = time.perf_counter()
    steps["compiled"]()
    compile_s = time.perf_counter() - start - eager_s
    ms = alternating_medians(steps, args.repeats, args.warmup)
    iters = trainers["eager"].cfg.train.max_iters
    for t in trainers.values():
        t.close()
    return {"amp": amp, "eager_ms": ms["eager"], "compiled_ms": ms["compiled"], "compile_s": compile_s,
            "iters": iters, "batch": list(batch[0].shape)}


def table(rows: list, config: str) -> str:
    lines = ["| train.amp | eager step ms | compiled step ms | x eager (step) | compile s | "
             "x eager over a run (compile included) |", "|---|---|---|---|---|---|"]
    for r in rows:
        run = r["iters"] * r["eager_ms"] / (r["iters"] * r["compiled_ms"] + 1e3 * r["compile_s"])
        lines.append(f"| {r['amp']} | {r['eager_ms']:.0f} | {r['compiled_ms']:.0f} | "
                     f"{r['eager_ms'] / r['compiled_ms']:.2f} | {r['compile_s']:.1f} | {run:.2f} ({r['iters']} iterations) |")
    return "\n".join(lines) + (f"\n\n`{config}`, one batch {tuple(rows[0]['batch'])} repeated, full training steps, "
                               "median of each, in turn.")


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]), repeats=7)
    p.add_argument("--config", default="configs/demo/ccnet.yaml")
    p.add_argument("--amp", default="off,bf16", help="comma list of train.amp values")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config (data.root=..., say)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.config = os.path.join(ROOT, args.config) if not os.path.isabs(args.config) else args.config
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for amp in args.amp.split(","):
            print(f"[cpu] train.amp={amp}: eager and compiled steps ...", file=sys.stderr, flush=True)
            rows.append(measure(args, amp, tmp))
    text = table(rows, os.path.relpath(args.config, ROOT))
    print(text)
    write_results("compiled_train", "cpu", rows, text, {"config": os.path.relpath(args.config, ROOT),
                                                        "threads": args.threads}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
