#!/usr/bin/env python
"""Whole models beside mmsegmentation's own: the same network, the same weights, timed side by side.

For each head, mmsegmentation 1.2.2 builds its ResNet-50-V1c D8 model from its
own config file; ours is built from ``configs/mmseg/<same name>.yaml`` and
given mmseg's weights through the checkpoint conversion, and the two must
give equal logits before anything is timed. Then, alternating between the two
so that a slow moment of the machine hits both: an eval forward (ours:
``model(x)["main"]``, theirs: ``encode_decode``, both logits at the input
size) and one SGD training step (forward in training mode, each side's own
losses: decode head, auxiliary head 0.4, DANet's two extra heads; backward;
``optimizer.step``), median over ``repeats``.

Ours runs as the tools run it: in ``eval.channels_last``'s memory format for
the eval forward (as ``tools/eval.py`` loads it, images fed NCHW) and in
``train.channels_last``'s for the step (weights and images, as the trainer
does); a second copy of ours in NCHW, mmseg's format, runs in the same
alternation, so the table shows what the memory format is worth.

    python benchmarks/mmseg_models.py --repeats 5     # needs mmsegmentation, installed as the tests install it

``block_cases`` gives the all-pairs blocks alone, DANet's PAM and NLHead's
``NonLocal2d`` beside ours with the same weights (outputs compared first):
what ``benchmarks/gpu_suite.py`` times on a GPU.
"""
import argparse
import copy
import os
import sys

import torch

from _common import ROOT, add_common_args, write_results
from segattn.analysis.benchmark import Case, allow_tf32, alternating_medians, markdown_table
from segattn.config import load_config
from segattn.engine.checkpoint import load_model_weights
from segattn.engine.device import memory_format
from segattn.engine.losses import build_loss
from segattn.interop.mmseg import convert_state_dict
from segattn.interop.mmseg_peer import build_mmseg_model, mmseg_logits, randomize
from segattn.models import build_model


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest difference over the largest magnitude of ``expected``."""
    return float((got - expected).abs().max() / expected.abs().max())


def model_pair(head: str, config_dir: str, depth: int = 50, seed: int = 0):
    """``(cfg, ours, theirs)`` with mmseg's random weights in both; AssertionError if their logits differ. Seeded
    (mmseg's initialisation draws from torch's global generator), so every run measures the same models."""
    torch.manual_seed(seed)
    name = f"{head}_r{depth}-d8_769x769_40k_cityscapes"
    theirs = randomize(build_mmseg_model(name))
    cfg = load_config(os.path.join(config_dir, f"{name}.yaml"), ["model.encoder.weights=null", "model.norm=bn"])
    ours = build_model(cfg)
    load_model_weights(ours, convert_state_dict(theirs.state_dict(), ours, name))
    x = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        err = relative_error(ours.eval()(x)["main"], mmseg_logits(theirs, x))
    if err > 1e-4:
        raise AssertionError(f"{name}: segattn's logits differ from mmseg's by {err:.1e} (relative)")
    return cfg, ours, theirs


# the all-pairs block inside each head: (our head's attribute, mmseg decode head's attribute, label)
BLOCKS = {"danet": ("pam", "pam", "DANet PAM"), "nonlocal": ("attention", "nl_block", "Non-local")}


def block_cases(config_dir: str, device, batch: int, height: int, width: int, tolerance: float = 1e-4) -> list:
    """Cases (group ``mmseg blocks``) of DANet's PAM and the Non-local block, ours (as shipped, lean) beside
    mmseg's own module taken from its R-50 head with the same weights, float32 and under bfloat16 autocast.

    Before anything is timed the two blocks' float32 outputs on the measured input shape must agree within
    ``tolerance`` (relative to the largest value; TF32 off): AssertionError naming the block otherwise."""
    import mmseg

    cases = []
    for head, (ours_attr, theirs_attr, label) in BLOCKS.items():
        _, ours_model, theirs_model = model_pair(head, config_dir)
        ours, theirs = getattr(ours_model.head, ours_attr), getattr(theirs_model.decode_head, theirs_attr)
        channels = next(m for m in ours.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, channels, height, width, generator=g)
        ours, theirs = ours.to(device).eval(), theirs.to(device).eval()
        with torch.no_grad(), allow_tf32(False):
            err = relative_error(ours(x.to(device)), theirs(x.to(device)))
        if err > tolerance:
            raise AssertionError(f"{label}: segattn's block output differs from mmseg's by {err:.1e} (relative)")
        for bf16 in (False, True):
            for side, module in (("segattn", ours), (f"mmseg {mmseg.__version__}", theirs)):
                cases.append(Case("mmseg blocks", f"{label} ({'bf16' if bf16 else 'fp32'}): {side}", module,
                                  lambda x=x: (x.clone(),), bf16=bf16))
    return cases


def _over_mmseg(rows: list, columns: dict) -> list:
    """Rows named ``"<what>: <side>"``: each segattn row gets ``columns`` (its key -> the ratio's key) as its
    value over the mmseg row of the same ``<what>`` (below 1: ours less); a column either side lacks is left."""
    theirs = {r["name"].split(":")[0]: r for r in rows if ": mmseg" in r["name"]}
    for row in rows:
        peer = theirs.get(row["name"].split(":")[0])
        if ": segattn" not in row["name"] or peer is None:
            continue
        for key, ratio in columns.items():
            if row.get(key) and peer.get(key):
                row[ratio] = row[key] / peer[key]
    return rows


def over_mmseg(rows: list) -> list:
    """Each segattn block row gets its columns over mmseg's same block and precision (below 1: ours less)."""
    return _over_mmseg(rows, {key: f"{key}_vs_mmseg" for key in ("fwd_ms", "fwd_bwd_ms", "act_mb", "infer_mb",
                                                                 "peak_mb")})


def _ours_step(cfg, model, x, y):
    criterion = build_loss(cfg, model.head.loss_weights)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        model.train()
        loss, _ = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _theirs_step(model, x, y):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for label in y:
        sample = SegDataSample(gt_sem_seg=PixelData(data=label[None]))
        sample.set_metainfo(dict(img_shape=tuple(x.shape[-2:]), ori_shape=tuple(x.shape[-2:])))
        samples.append(sample)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        model.train()
        loss, _ = model.parse_losses(model.loss(x, samples))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def compare(head: str, config_dir: str, eval_size=(256, 512), train_size=(256, 256), train_batch: int = 2,
            repeats: int = 3, warmup: int = 1) -> list:
    """Rows (segattn as shipped, segattn in NCHW, mmseg) for ``head``: eval forward and training step, median ms."""
    cfg, nchw, theirs = model_pair(head, config_dir)
    shipped = copy.deepcopy(nchw)
    x = torch.randn(1, 3, *eval_size)
    xt = torch.randn(train_batch, 3, *train_size)
    yt = torch.randint(0, 19, (train_batch, *train_size))

    def eval_job(model):
        def run():
            with torch.no_grad():
                model.eval()(x)["main"]
        return run

    def theirs_eval():
        mmseg_logits(theirs, x)

    import mmseg

    shipped.to(memory_format=memory_format(cfg.eval.channels_last))
    evals = alternating_medians({"segattn": eval_job(shipped), "nchw": eval_job(nchw), "mmseg": theirs_eval},
                                repeats, warmup)
    train_format = memory_format(cfg.train.channels_last)
    shipped.to(memory_format=train_format)
    trains = alternating_medians({"segattn": _ours_step(cfg, shipped, xt.contiguous(memory_format=train_format), yt),
                                  "nchw": _ours_step(cfg, nchw, xt, yt), "mmseg": _theirs_step(theirs, xt, yt)},
                                 repeats, warmup)
    names = {"segattn": "segattn", "nchw": "segattn, NCHW", "mmseg": f"mmseg {mmseg.__version__}"}
    return [{"group": "mmseg", "name": f"{head} R-50-D8: {names[side]}", "eval_ms": evals[side],
             "train_ms": trains[side]} for side in names]


def with_ratios(rows: list) -> list:
    """Each segattn row gets its time over mmseg's for the same head (below 1: faster)."""
    return _over_mmseg(rows, {"eval_ms": "eval_vs_mmseg", "train_ms": "train_vs_mmseg"})


COLUMNS = [("name", "model"), ("eval_ms", "eval fwd ms"), ("eval_vs_mmseg", "vs mmseg"),
           ("train_ms", "train step ms"), ("train_vs_mmseg", "vs mmseg")]


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__.splitlines()[1]), repeats=5)
    p.add_argument("--heads", default="ccnet,danet,nonlocal,fcn")
    p.add_argument("--eval-size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    p.add_argument("--train-size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    args = p.parse_args(argv)
    rows = []
    for head in args.heads.split(","):
        print(f"[cpu] {head}: segattn (as shipped and NCHW) and mmseg, logits compared first ...", file=sys.stderr,
              flush=True)
        rows += compare(head, os.path.join(ROOT, "configs", "mmseg"), tuple(args.eval_size), tuple(args.train_size),
                        repeats=args.repeats, warmup=args.warmup)
    rows = with_ratios(rows)
    table = markdown_table(rows, COLUMNS)
    print(f"\n### whole models against mmsegmentation, eval forward 1x3x{args.eval_size[0]}x{args.eval_size[1]}, "
          f"SGD step 2x3x{args.train_size[0]}x{args.train_size[1]}, median of {args.repeats}\n\n{table}")
    write_results("mmseg_models", "cpu", rows, table, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
