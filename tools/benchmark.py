#!/usr/bin/env python
"""Measure heads, the RCCA vs Non-local blocks and the criss-cross op; print a Markdown table.

    python tools/benchmark.py                      # 2048 x 97 x 97, CPU (and CUDA if present)
    python tools/benchmark.py --size 65 65 --json bench.json --device cpu
    python tools/benchmark.py --mode op            # criss-cross implementations (CUDA if present)
    TRITON_INTERPRET=1 python tools/benchmark.py --mode op --device cpu --memory-only --batch 1 --size 97 97 --groups op
                                                   # what each op allocates, the kernel under Triton's interpreter
    python tools/benchmark.py --peers mmseg        # whole models against mmsegmentation's own, same weights
    python tools/benchmark.py --mode deploy        # each demo model in PyTorch, ONNX Runtime and OpenVINO
    python tools/benchmark.py --suite gpu --output gpu_suite/   # the GPU proof, one command (--dry-run: CPU)

Numbers are taken in one run, so read them as ratios between rows.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if "--dry-run" in sys.argv:  # Triton's interpreter is chosen when a kernel is defined: before any import of ours
    os.environ.setdefault("TRITON_INTERPRET", "1")

import warnings  # noqa: E402

import torch  # noqa: E402

# FLOP counting installs a global module hook, which torch.compile warns about harmlessly
warnings.filterwarnings("ignore", message="Using `torch.compile")

from segattn.analysis.benchmark import (  # noqa: E402
    attention_cases, head_cases, markdown_table, measure, op_cases, paper_ratios, relative_to_reference)

OP_COLUMNS = [("group", "group"), ("name", "impl: dtype B x C x H x W"), ("fwd_ms", "fwd ms"),
              ("fwd_bwd_ms", "fwd+bwd ms"), ("speedup_fwd_bwd", "fwd+bwd speed-up"), ("peak_mb", "peak MB"),
              ("memory_vs_reference", "peak vs reference"), ("extra_mb", "op extra MB"),
              ("extra_vs_reference", "extra vs reference"), ("act_mb", "saved act. MB")]
OP_MEMORY_COLUMNS = [("group", "group"), ("name", "impl: dtype B x C x H x W"), ("extra_mb", "op extra MB"),
                     ("extra_vs_reference", "extra vs reference"), ("act_mb", "saved act. MB")]


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["paper", "op", "deploy"], default="paper",
                   help="paper: heads, RCCA vs Non-local, ops; op: criss-cross implementations; deploy: each demo "
                   "model in PyTorch, ONNX Runtime and OpenVINO on one --image-size image")
    p.add_argument("--suite", choices=["gpu"], help="gpu: the whole GPU proof in one command (kernel checks, op "
                   "table, RCCA vs Non-local, CCNet vs FCN steps), written to --output as gpu.md and gpu.json")
    p.add_argument("--output", default="gpu_suite", help="--suite: the folder for gpu.md / gpu.json")
    p.add_argument("--dry-run", action="store_true", help="--suite gpu on the CPU with tiny shapes (Triton's "
                   "interpreter, no torch.compile): checks the command itself")
    p.add_argument("--budget", type=float, default=480, help="--suite: seconds; later parts are skipped, and "
                   "said so, once spent")
    p.add_argument("--image-size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"),
                   help="--mode deploy: the image size")
    p.add_argument("--channels", type=int, default=2048, help="encoder feature channels (layer4)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="feature size (default 97 97; --mode op: 97 97 and 129 257)")
    p.add_argument("--batch", type=int, help="default 1 (--mode op: 4)")
    p.add_argument("--device", action="append", help="cpu / cuda; repeatable (default: cpu, plus cuda if present)")
    p.add_argument("--groups", help="comma list of head, block, op (default: all three); --mode op: of op, "
                   "'rcca head' (default: both)")
    p.add_argument("--impls", default="reference,lean,compiled,triton",
                   help="--mode op: comma list of reference, lean, compiled, triton")
    p.add_argument("--memory-only", action="store_true", help="--mode op: only the memory columns (no timing)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--peers", choices=["mmcv", "mmseg"],
                   help="mmcv: also time mmcv's CCNet module beside ours (same weights, outputs compared first); "
                   "mmseg: instead, whole ResNet-50 models against mmsegmentation's own (eval forward at "
                   "--eval-size, one SGD step at batch 2 x --train-size)")
    p.add_argument("--heads", default="ccnet,danet,nonlocal,fcn", help="--peers mmseg, --mode deploy: the heads")
    p.add_argument("--eval-size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    p.add_argument("--train-size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--json", help="also write the rows and ratios to this JSON file")
    return p


def run_op_mode(args):
    from segattn.analysis.benchmark import OP_GROUPS, OP_IMPLS

    device = (args.device or ["cuda" if torch.cuda.is_available() else "cpu"])[0]
    impls = tuple(i.strip() for i in args.impls.split(","))
    groups = tuple(g.strip() for g in args.groups.split(",")) if args.groups else OP_GROUPS
    for what, given, allowed in (("--impls", impls, OP_IMPLS), ("--groups", groups, OP_GROUPS)):
        if set(given) - set(allowed):
            sys.exit(f"error: {what} takes {', '.join(allowed)}; got {', '.join(sorted(set(given) - set(allowed)))}")
    interpret = device == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
    sizes = (tuple(args.size),) if args.size else ((97, 97), (129, 257))
    rows = []
    for case in op_cases(device, batch=args.batch or 4, sizes=sizes, impls=impls, interpret=interpret,
                         groups=groups):
        print(f"[{device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
        rows.append(measure(case, device, args.repeats, args.warmup, memory_only=args.memory_only))
    rows = relative_to_reference(rows)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    where = f"{device} ({name}{', Triton interpreter' if interpret else ''})"
    print(f"\n### criss-cross implementations on {where}\n")
    print(markdown_table(rows, OP_MEMORY_COLUMNS if args.memory_only else OP_COLUMNS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json}")


MMSEG_COLUMNS = [("name", "model"), ("eval_ms", "eval fwd ms"), ("eval_vs_mmseg", "vs mmseg"),
                 ("train_ms", "train step ms"), ("train_vs_mmseg", "vs mmseg")]


def run_mmseg_peers(args):
    from segattn.analysis.mmseg_peers import compare, with_ratios

    config_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "mmseg")
    rows = []
    for head in args.heads.split(","):
        print(f"[cpu] {head}: segattn (as shipped and NCHW) and mmseg, logits compared first ...", file=sys.stderr,
              flush=True)
        rows += compare(head, config_dir, tuple(args.eval_size), tuple(args.train_size), repeats=args.repeats,
                        warmup=args.warmup)
    rows = with_ratios(rows)
    print(f"\n### whole models against mmsegmentation on cpu, {torch.get_num_threads()} threads: eval forward "
          f"1x3x{args.eval_size[0]}x{args.eval_size[1]}, SGD step 2x3x{args.train_size[0]}x{args.train_size[1]}, "
          f"median of {args.repeats}\n")
    print(markdown_table(rows, MMSEG_COLUMNS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": torch.get_num_threads(), "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json}")


def run_deploy_mode(args):
    from segattn.analysis.runtimes import compare_runtimes

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h, w = args.image_size
    rows = []
    for head in args.heads.split(","):
        print(f"[cpu] {head}: PyTorch, ONNX Runtime, OpenVINO, logits compared first ...", file=sys.stderr, flush=True)
        ms = compare_runtimes(os.path.join(root, "configs", "demo", f"{head}.yaml"), h, w, args.repeats, args.warmup)
        rows.append({"name": f"{head} (configs/demo/{head}.yaml)", **{f"{k}_ms": v for k, v in ms.items()},
                     "ort_speedup": ms["pytorch"] / ms["onnxruntime"], "ov_speedup": ms["pytorch"] / ms["openvino"]})
    columns = [("name", "model"), ("pytorch_ms", "PyTorch ms"), ("onnxruntime_ms", "ONNX Runtime ms"),
               ("openvino_ms", "OpenVINO ms"), ("ort_speedup", "ORT speed-up"), ("ov_speedup", "OpenVINO speed-up")]
    print(f"\n### one {h}x{w} uint8 image -> logits, cpu, torch {torch.get_num_threads()} threads, median of "
          f"{args.repeats}\n")
    print(markdown_table(rows, columns))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"image_size": [h, w], "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json}")


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    if args.suite == "gpu":
        from segattn.analysis.gpu_suite import run_suite

        result = run_suite(args.output, args.dry_run, args.budget)
        with open(os.path.join(args.output, "gpu.md")) as f:
            print(f.read())
        failed = [c["name"] for c in result["parts"]["checks"] if not c["ok"]]
        if failed:
            print(f"kernel checks FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    if args.mode == "op":
        return run_op_mode(args)
    if args.mode == "deploy":
        return run_deploy_mode(args)
    if args.peers == "mmseg":
        return run_mmseg_peers(args)
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    groups = set((args.groups or "head,block,op").split(","))
    args.batch = args.batch or 1
    h, w = args.size or (97, 97)
    result = {"size": [args.channels, h, w], "batch": args.batch, "devices": {}}
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            sys.exit(f"error: --device {device} asked for but torch sees no CUDA device")
        cases = []
        if "head" in groups:
            cases += head_cases(args.channels, h, w, args.batch)
        cases += [c for c in attention_cases(512, h, w, args.batch) if c.group in groups]
        if args.peers:
            from segattn.analysis.peers import peer_cases

            cases += peer_cases(512, h, w, args.batch)
        rows = []
        for case in cases:
            print(f"[{device}] {case.group} {case.name} ...", file=sys.stderr, flush=True)
            rows.append(measure(case, device, args.repeats, args.warmup))
        ratios = paper_ratios(rows)
        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        result["devices"][device] = {"name": name, "rows": rows, "ratios": ratios}
        print(f"\n### {device} ({name}), batch {args.batch}, features {args.channels} x {h} x {w}\n")
        print(markdown_table(rows))
        if ratios:
            print(f"\nRCCA vs Non-local block: Non-local needs {ratios['nonlocal_over_rcca_inference_memory']:.1f}x "
                  f"the inference peak memory of RCCA (paper: 11x) and saves "
                  f"{ratios['nonlocal_over_rcca_act_memory']:.1f}x its memory for backward; RCCA needs "
                  f"{100 * ratios['rcca_flops_reduction']:.1f}% fewer FLOPs (paper: 85%)")
            if "nonlocal_over_rcca_peak_memory" in ratios:
                print(f"peak CUDA memory ratio Non-local / RCCA: {ratios['nonlocal_over_rcca_peak_memory']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
