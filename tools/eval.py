#!/usr/bin/env python
"""Evaluate a checkpoint on a labelled split: per-class IoU table, mIoU, mAcc, aAcc.

    python tools/eval.py configs/demo/ccnet.yaml --checkpoint checkpoints/demo_ccnet/best.pth
    python tools/eval.py configs/ccnet.yaml --checkpoint best.pth --mode slide --scales 0.75 1 1.25 1.5 1.75 --flip
    python tools/eval.py configs/ccnet.yaml --checkpoint best.pth --save-pred preds/ --save-color colour/

``--save-pred`` writes one label-id PNG per image and nothing else, the folder
Cityscapes' own evaluator (csEvalPixelLevelSemanticLabeling) and test server
take as it is; ``--save-color`` gets one PNG per image: prediction, ground
truth and errors side by side, with a legend of the classes. The metrics are also
written as JSON next to the checkpoint, one file per checkpoint, split and
inference setting (eval_<split>_<checkpoint>_<setting>.json, e.g.
eval_val_best_whole_s1.json or eval_val_best_slide769x769-513x513_s0.75-1-1.25_flip.json;
the settings are inside too), with the confusion matrix: its pixel counts
(confusion_<split>_<checkpoint>_<setting>.json, rows the ground truth) and a
picture of it, each row divided by its pixels (.png); ``--save-plots`` adds the
per-class IoU as bars (iou_<split>_<checkpoint>_<setting>.png).
Under ``torchrun --nproc_per_node=N`` the images are sharded across processes.

``--backend onnxruntime|openvino --model OUT.onnx`` evaluates an export of
tools/export.py (float or ``--int8``) instead of the checkpoint: each image as
decoded from its file, the export's own whole-image pass; the JSON files go
beside the .onnx, named by its stem and the backend
(eval_val_ccnet-int8_onnxruntime.json).
"""
import argparse
import os

from segattn.cli import add_backend_args, add_model_args, load_backend, model_tool_config, run


def get_args_parser():
    p = add_backend_args(add_model_args(argparse.ArgumentParser(description="Evaluate a segmentation checkpoint."),
                                        checkpoint_required=False))
    p.add_argument("--split", default=None, help="split to evaluate (default: data.val_split)")
    p.add_argument("--mode", choices=["whole", "slide"], help="override eval.mode")
    p.add_argument("--scales", type=float, nargs="+", help="override eval.scales, e.g. 0.75 1.0 1.25")
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped predictions")
    p.add_argument("--save-pred", metavar="DIR",
                   help="write one prediction PNG per image here (Cityscapes label ids: the official evaluator's "
                   "input)")
    p.add_argument("--save-color", metavar="DIR",
                   help="write prediction | ground truth | errors PNGs (with a class legend) here")
    p.add_argument("--save-plots", action="store_true",
                   help="also draw the per-class IoU as bars (iou_<split>_<checkpoint>_<setting>.png)")
    return p


def main(argv):
    args = get_args_parser().parse_intermixed_args(argv)
    overrides = []
    if args.mode:
        overrides.append(f"eval.mode={args.mode}")
    if args.scales:
        overrides.append(f"eval.scales=[{','.join(map(str, args.scales))}]")
    if args.flip:
        overrides.append("eval.flip=true")
    cfg, ckpt = model_tool_config(args, overrides)
    if args.backend != "torch" and overrides:
        from segattn.errors import ConfigError

        raise ConfigError(f"--mode / --scales / --flip set how PyTorch evaluates; --backend {args.backend} runs the "
                          "export's own whole-image pass at its scale: leave them out (or export again for another "
                          "scale)")

    from segattn.data import build_dataset
    from segattn.engine.evaluator import claim_prediction_folders, eval_setting, evaluate
    from segattn.engine.distributed import all_ranks, init_distributed_mode
    from segattn.analysis.plots import confusion_figure, iou_figure
    from segattn.engine.metrics import format_table, save_confusion_json, save_json
    from segattn.engine.predictor import resolve_device

    rank, _, ddp_device = init_distributed_mode(cfg.train.device)  # under torchrun: sharded evaluation
    device = ddp_device or resolve_device(cfg.train.device)
    model, weights = load_backend(args, cfg, ckpt, device)
    split = args.split or cfg.data.val_split
    dataset = build_dataset(cfg.data, split)
    if args.save_pred or args.save_color:  # every rank checks before any rank writes
        claim_prediction_folders(dataset, args.save_pred, args.save_color)
        all_ranks(True)
    metrics = evaluate(model, dataset, cfg, device, not args.no_progress, save_dir=args.save_pred,
                       color_dir=args.save_color, compile_mode=cfg.eval.compile)
    if rank != 0:
        return 0
    print(format_table(metrics, dataset.class_names))
    folder = os.path.dirname(os.path.abspath(weights))
    if args.backend == "torch":
        setting, settings = eval_setting(cfg)  # one file per checkpoint, split and inference setting
    else:  # the export's pass: whole image at the scale it was exported with
        setting, settings = args.backend, {"backend": args.backend, **model.metadata}
    tag = f"{split}_{os.path.splitext(os.path.basename(weights))[0]}_{setting}"
    out = os.path.join(folder, f"eval_{tag}.json")
    save_json(metrics, dataset.class_names, out, {"checkpoint" if args.backend == "torch" else "model":
                                                  os.path.abspath(weights), "split": split, **settings})
    written = [out, os.path.join(folder, f"confusion_{tag}.json"), os.path.join(folder, f"confusion_{tag}.png")]
    save_confusion_json(metrics["confusion"], dataset.class_names, written[1])
    name = os.path.basename(weights)
    confusion_figure(metrics["confusion"], dataset.class_names, written[2], f"{name} on {split}")
    if args.save_plots:
        written.append(os.path.join(folder, f"iou_{tag}.png"))
        iou_figure(metrics, dataset.class_names, written[-1], f"{name} on {split}: per-class IoU")
    print(f"wrote {', '.join(written)}" + (f"; predictions in {args.save_pred}" if args.save_pred else "")
          + (f"; colour images in {args.save_color}" if args.save_color else ""))
    return 1 if metrics["skipped"] else 0


if __name__ == "__main__":
    run(main)
