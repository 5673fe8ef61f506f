#!/usr/bin/env python
"""segattn's training against mmsegmentation's own, end to end on the demo data: CCNet, three seeds each side.

    python benchmarks/mmseg_training.py            # seeds 0, 1, 2; about 40 minutes on 2 CPU cores

segattn's side is ``python tools/train.py configs/mmseg_demo/ccnet.yaml`` (mmsegmentation's Cityscapes
769x769 recipe made small: ResNetV1c-18 from scratch, channels 64 / 32, the recipe's sizes / 8).
mmsegmentation's side is what its ``tools/train.py`` does: mmengine's ``Runner`` built from its own
``ccnet_r50-d8_4xb2-80k_cityscapes-769x769.py``, changed only where that segattn config changes the recipe
(depth 18, channels, BN for SyncBN, no pretrained weights, sizes, batch, iterations, read from the segattn
config so the two cannot drift apart), with its data pipeline, ``CCHead`` and ``FCNHead``, evaluated by its
``IoUMetric``. Both read the same demo images; mmsegmentation's ``*_gtFine_labelTrainIds.png`` are made from
the demo's label ids with cityscapesscripts' label table, as its Cityscapes converter does. Every run is a
fresh process, one after the other; the wall time is the whole command's (start-up, training, evaluation).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from _common import ROOT, timed, write_results

CONFIG = "configs/mmseg_demo/ccnet.yaml"
MMSEG_CONFIG = "ccnet_r50-d8_769x769_80k_cityscapes"


def label_train_ids(demo_root: str, out_root: str):
    """mmsegmentation's Cityscapes layout beside the demo's: its images linked, ``*_labelTrainIds.png`` written."""
    import cv2
    import numpy as np
    from cityscapesscripts.helpers.labels import labels

    table = np.full(256, 255, np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            table[label.id] = label.trainId
    os.makedirs(out_root, exist_ok=True)
    os.symlink(os.path.join(os.path.abspath(demo_root), "leftImg8bit"), os.path.join(out_root, "leftImg8bit"))
    for folder, _, files in os.walk(os.path.join(demo_root, "gtFine")):
        for name in files:
            if name.endswith("_gtFine_labelIds.png"):
                target = os.path.join(out_root, os.path.relpath(folder, demo_root))
                os.makedirs(target, exist_ok=True)
                ids = cv2.imread(os.path.join(folder, name), cv2.IMREAD_UNCHANGED)
                cv2.imwrite(os.path.join(target, name.replace("_labelIds", "_labelTrainIds")), table[ids])


def mmseg_config(cfg, data_root: str, work_dir: str, seed: int):
    """mmsegmentation's own CCNet Cityscapes config, changed where ``cfg`` (configs/mmseg_demo) changes it."""
    from mmengine import Config

    from segattn.interop.mmseg_peer import mmseg_config_path

    mm = Config.fromfile(mmseg_config_path(MMSEG_CONFIG))
    depth = int(re.fullmatch(r"tu-resnet(\d+)c", cfg.model.encoder.name).group(1))
    bn = dict(type="BN", requires_grad=True)
    crop, t, d = tuple(cfg.data.crop_size), cfg.train, cfg.data
    mm.model.pretrained = None
    mm.model.data_preprocessor.size = crop
    mm.model.backbone.update(depth=depth, norm_cfg=bn)
    deep, shallow = (2048, 1024) if depth >= 50 else (512, 256)
    mm.model.decode_head.update(in_channels=deep, channels=cfg.model.channels, norm_cfg=bn,
                                dropout_ratio=cfg.model.dropout)
    mm.model.auxiliary_head.update(in_channels=shallow, channels=cfg.model.aux.channels, norm_cfg=bn,
                                   dropout_ratio=cfg.model.dropout)
    mm.model.test_cfg = dict(mode="whole")
    for step in mm.train_pipeline:
        if step.type == "RandomResize":
            step.update(scale=tuple(d.train_scale), ratio_range=tuple(d.scale_range))
        elif step.type == "RandomCrop":
            step.update(crop_size=crop, cat_max_ratio=d.cat_max_ratio)
    for step in mm.test_pipeline:
        if step.type == "Resize":
            step.update(scale=tuple(d.test_resize))
    for loader, pipeline in ((mm.train_dataloader, mm.train_pipeline), (mm.val_dataloader, mm.test_pipeline)):
        loader.update(num_workers=d.workers, persistent_workers=False)
        loader.dataset.update(data_root=data_root, pipeline=pipeline)
    mm.train_dataloader.batch_size = t.batch_size
    mm.test_dataloader = mm.val_dataloader
    mm.optim_wrapper.optimizer.update(lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    (schedule,) = mm.param_scheduler
    schedule.update(end=t.max_iters, eta_min=t.min_lr, power=t.poly_power)
    mm.train_cfg.update(max_iters=t.max_iters, val_interval=t.max_iters)
    mm.default_hooks.checkpoint.interval = t.max_iters
    mm.default_hooks.logger.interval = t.log_interval
    mm.randomness = dict(seed=seed)
    mm.work_dir = work_dir
    mm.launcher = "none"
    return mm


def run_mmseg(data_root: str, work_dir: str, seed: int, overrides=()):
    """One mmsegmentation run, as its tools/train.py makes it (this process): prints its val mIoU."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from segattn.config import load_config
    from segattn.interop.mmseg_peer import import_mmseg

    import_mmseg()
    cfg = load_config(os.path.join(ROOT, CONFIG), list(overrides))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)  # as segattn's run does
    seen = {}

    class KeepMetrics(Hook):
        def after_val_epoch(self, runner, metrics=None):
            seen.update(metrics or {})

    runner = Runner.from_cfg(mmseg_config(cfg, data_root, work_dir, seed))
    runner.register_hook(KeepMetrics(), priority="LOWEST")
    runner.train()
    print(f"mmseg val mIoU {seen['mIoU']:.2f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    p.add_argument("--mmseg-run", nargs=3, metavar=("DATA", "WORK", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="key=value overrides of the segattn config, for both sides "
                   "(train.max_iters=20 for a quick try)")
    args = p.parse_args(argv)
    if args.mmseg_run:
        data, work, seed = args.mmseg_run
        return run_mmseg(data, work, int(seed), args.overrides)
    from segattn.config import load_config

    load_config(os.path.join(ROOT, CONFIG), args.overrides)  # a bad override fails here, before any run
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        demo, mmseg_data = os.path.join(tmp, "demo"), os.path.join(tmp, "mmseg_demo")
        subprocess.run([sys.executable, "-m", "segattn.data.demo", "--root", demo], cwd=ROOT, check=True,
                       capture_output=True)
        label_train_ids(demo, mmseg_data)
        for seed in (int(s) for s in args.seeds.split(",")):
            ours = [sys.executable, "tools/train.py", CONFIG, "--no-progress", f"train.seed={seed}",
                    f"data.root={demo}", f"train.out_dir={tmp}/checkpoints_{seed}", f"train.log_dir={tmp}/runs",
                    *args.overrides]
            theirs = [sys.executable, os.path.abspath(__file__), "--mmseg-run", mmseg_data, f"{tmp}/mmseg_{seed}",
                      str(seed), *args.overrides]
            print(f"[cpu] seed {seed}: mmsegmentation ...", file=sys.stderr, flush=True)
            mm_miou, mm_seconds = timed(theirs)
            print(f"[cpu] seed {seed}: segattn ...", file=sys.stderr, flush=True)
            miou, seconds = timed(ours)
            rows.append({"seed": seed, "mmseg_miou": mm_miou, "segattn_miou": miou, "mmseg_seconds": mm_seconds,
                         "segattn_seconds": seconds})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0] if k != "seed"}
    lines = ["| seed | mmsegmentation mIoU | segattn mIoU | mmsegmentation wall time | segattn wall time |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['mmseg_miou']:.2f} | {r['segattn_miou']:.2f} | {r['mmseg_seconds']:.0f} s | "
              f"{r['segattn_seconds']:.0f} s |" for r in rows]
    lines.append(f"| mean | {mean['mmseg_miou']:.2f} | {mean['segattn_miou']:.2f} | {mean['mmseg_seconds']:.0f} s | "
                 f"{mean['segattn_seconds']:.0f} s |")
    table = "\n".join(lines) + (
        f"\n\nsegattn - mmsegmentation: {mean['segattn_miou'] - mean['mmseg_miou']:+.2f} mIoU; segattn's wall time "
        f"{mean['segattn_seconds'] / mean['mmseg_seconds']:.2f}x mmsegmentation's.")
    print(table)
    write_results("mmseg_training", "cpu", rows, table, extra={"mean": mean, "overrides": args.overrides},
                  output=args.output)


if __name__ == "__main__":
    sys.exit(main())
