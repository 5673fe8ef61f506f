#!/usr/bin/env python
"""The GPU proof in one command: kernel checks, the op table, RCCA vs Non-local, training steps.

``python benchmarks/gpu_suite.py --output DIR`` runs, on one CUDA
device and within a time budget (8 minutes by default, later parts skipped
and said so once it is spent):

1. checks: the Triton kernel against the float64 reference, forward and
   backward, fp32 / fp16 / bf16, odd shapes; its backward run twice must be
   bitwise equal (no atomics: deterministic);
2. the op table: reference / ``torch.compile`` of it / lean / Triton at
   B=4, Cq=64, C=512, 97x97 and 129x257, fp32 and bf16, q, k, v in NCHW and
   channels-last (a channels-last model's layout): forward and
   forward+backward time, peak memory, and the op's extra memory (beyond its
   output and input gradients); the RCCA head the same way;
3. RCCA (R=2) against the Non-local block (the CCNet paper's comparison),
   and the all-pairs blocks (DANet's PAM, Non-local) lean against dense;
4. the all-pairs blocks beside mmsegmentation's own (``PAM`` of ``DAHead``,
   ``NonLocal2d`` of ``NLHead``, same weights, outputs compared first), where
   mmsegmentation is importable (else the part says so and is skipped);
5. one training step of CCNet against FCN (ResNet-101-V1c D8, 769 crops,
   batch 2), float32 and under fp16 / bf16 autocast.

It writes ``DIR/gpu.md`` (the tables) and ``DIR/gpu.json`` with the
GPU, driver, CUDA, torch and Triton versions. Without CUDA, ``dry_run`` runs
the same code on the CPU with tiny shapes (the kernel under Triton's
interpreter, ``TRITON_INTERPRET=1`` set before Triton is imported, and no
``torch.compile``): what CI runs, so the GPU session only has to launch it.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

if "--dry-run" in sys.argv:  # Triton's interpreter is chosen when a kernel is defined: before any import of ours
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from _common import ROOT, write_results  # noqa: E402
from segattn.analysis.benchmark import allow_tf32, markdown_table, measure, peak_cuda_mb, time_ms  # noqa: E402
from segattn.analysis.cases import (  # noqa: E402
    attention_cases,
    lean_over_dense,
    op_cases,
    paper_ratios,
    relative_to_reference,
    training_memory_format,
)

FULL = dict(batch=4, qk=64, channels=512, sizes=((97, 97), (129, 257)), check_sizes=((97, 97), (33, 65), (1, 17)),
            block=(512, 97, 97), encoder="tu-resnet101c", crop=769, step_batch=2, repeats=5, warmup=2)
DRY = dict(batch=1, qk=4, channels=8, sizes=((9, 11),), check_sizes=((5, 7), (1, 6)), block=(16, 9, 11),
           encoder="resnet18", crop=65, step_batch=2, repeats=1, warmup=0)


class Budget:
    """Wall-clock budget: ``left()`` seconds, and the names of the parts skipped because it was spent."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.skipped = []

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, part: str, need: float) -> bool:
        if self.left() >= need:
            return True
        self.skipped.append(part)
        return False


def environment(device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    if torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["capability"] = "sm_%d%d" % torch.cuda.get_device_capability(device)
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
    return env


def kernel_checks(device, sizes, qk, channels) -> list:
    """Triton against the float64 reference (forward, each gradient), and a bitwise-repeatable backward."""
    from segattn.ops.reference import criss_cross_attention_reference
    from segattn.ops.triton_kernels import criss_cross_attention_triton

    # float32 runs as TF32 (10-bit mantissa, like float16's): the kernel takes float32 only so
    tolerance = {torch.float32: 1e-2, torch.float16: 1e-2, torch.bfloat16: 4e-2}
    rows = []
    for dtype, tol in tolerance.items():
        for h, w in sizes:
            g = torch.Generator().manual_seed(h * 1000 + w)
            q, k = (torch.randn(2, qk, h, w, generator=g) for _ in range(2))
            v, grad = (torch.randn(2, channels, h, w, generator=g) for _ in range(2))
            ref_in = [t.double().requires_grad_() for t in (q, k, v)]
            ref = criss_cross_attention_reference(*ref_in)
            ref.backward(grad.double())
            runs = []
            for _ in range(2):
                ins = [t.to(device, dtype).clone().requires_grad_() for t in (q, k, v)]  # fresh leaves each run
                with allow_tf32(True):
                    out = criss_cross_attention_triton(*ins)
                    out.backward(grad.to(device, dtype))
                runs.append([out.detach()] + [t.grad for t in ins])
            errors = {}
            for name, got, want in zip(("out", "dq", "dk", "dv"), runs[0], [ref] + [t.grad for t in ref_in]):
                want = want.detach()
                errors[name] = float((got.double().cpu() - want).abs().max() / want.abs().max().clamp(min=1e-12))
            bitwise = all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
            worst = max(errors.values())
            name = {torch.float32: "float32/TF32"}.get(dtype, str(dtype).replace("torch.", ""))
            rows.append({"name": f"{name} 2x{qk}/{channels}x{h}x{w}",
                         "max_rel_error": f"{worst:.1e}", "tolerance": f"{tol:g}", "deterministic": bitwise,
                         "ok": worst <= tol and bitwise, **{f"err_{k}": e for k, e in errors.items()}})
    return rows


def training_steps(device, encoder, crop, batch, repeats, warmup, amp_dtypes) -> list:
    """One SGD step (forward, loss with aux 0.4, backward, step) of CCNet and FCN on the same encoder, in the
    memory format training uses by default (``train.channels_last``), weights and images, as the trainer."""
    from segattn.models import build_model

    fmt = training_memory_format()
    rows = []
    for head in ("ccnet", "fcn"):
        torch.manual_seed(0)
        model = build_model({"head": head, "encoder": {"name": encoder, "weights": None}})
        model = model.to(device, memory_format=fmt).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        x = torch.randn(batch, 3, crop, crop, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, 19, (batch, crop, crop), device=device)
        for dtype in amp_dtypes:
            kind = torch.device(device).type
            scaler = torch.amp.GradScaler(kind, enabled=dtype == torch.float16)

            def step():
                with torch.autocast(kind, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    out = model(x)
                    loss = torch.nn.functional.cross_entropy(out["main"].float(), y) + \
                        0.4 * torch.nn.functional.cross_entropy(out["aux"].float(), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()

            row = {"group": "train step", "name": f"{head}: {str(dtype).replace('torch.', '') if dtype else 'float32'}",
                   "step_ms": time_ms(step, device, repeats, warmup)}
            if kind == "cuda":
                row["peak_mb"] = peak_cuda_mb(step, device)
            rows.append(row)
    by = {r["name"]: r for r in rows}
    for r in rows:
        if r["name"].startswith("ccnet"):
            fcn = by.get("fcn" + r["name"][len("ccnet"):])
            if fcn:
                r["vs_fcn"] = r["step_ms"] / fcn["step_ms"]
    return rows


def run_suite(output: str, dry_run: bool = False, budget_s: float = 480.0) -> dict:
    """Run every part; write ``output/gpu.md`` and ``output/gpu.json``; returns the result dict."""
    if dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    device = "cpu" if dry_run else "cuda"
    if not dry_run and not torch.cuda.is_available():
        from segattn.errors import RunError

        raise RunError("--suite gpu needs a CUDA device (torch sees none); --dry-run runs it on the CPU, tiny")
    p = DRY if dry_run else FULL
    budget = Budget(budget_s)
    os.makedirs(output, exist_ok=True)
    result = {"environment": environment(device), "dry_run": dry_run, "parts": {}}
    started = time.monotonic()

    result["parts"]["checks"] = kernel_checks(device, p["check_sizes"], p["qk"], p["channels"])
    _write(output, result, started, budget)  # each part is on disk as soon as it is done
    rows = []

    def op_rows(impls, need):
        for case in op_cases(device, p["batch"], p["qk"], p["channels"], p["sizes"], head_in=4 * p["channels"],
                             impls=impls, interpret=dry_run):
            if budget.allows(f"op table: {case.group} {case.name}", 0 if dry_run else need):
                rows.append(measure(case, device, p["repeats"], p["warmup"]))
                result["parts"]["ops"] = relative_to_reference(rows)
                _write(output, result, started, budget)

    if budget.allows("op table", 0 if dry_run else 120):
        op_rows(("reference", "lean", "triton"), 10)
    if budget.allows("RCCA vs Non-local", 0 if dry_run else 30):
        c, h, w = p["block"]
        blocks = [measure(case, device, p["repeats"], p["warmup"]) for case in attention_cases(c, h, w, 2)
                  if case.group in ("block", "all-pairs")]
        result["parts"]["blocks"] = blocks
        result["parts"]["block_ratios"] = paper_ratios(blocks)
        result["parts"]["all_pairs_lean_over_dense"] = lean_over_dense(blocks)
        _write(output, result, started, budget)
    if budget.allows("all-pairs blocks beside mmseg", 0 if dry_run else 40):
        _, h, w = p["block"]
        rows_mmseg, note = mmseg_block_rows(device, 2, h, w, p["repeats"], p["warmup"])
        result["parts"]["mmseg_blocks"] = rows_mmseg
        if note:
            result["parts"]["mmseg_blocks_note"] = note
        _write(output, result, started, budget)
    if budget.allows("training steps", 0 if dry_run else 60):
        amp = (None, torch.bfloat16) if dry_run else (None, torch.float16, torch.bfloat16)
        result["parts"]["train"] = training_steps(device, p["encoder"], p["crop"], p["step_batch"], p["repeats"],
                                                  p["warmup"], amp)
        _write(output, result, started, budget)
    if not dry_run:  # last: compiling takes long, and the rows above matter more
        op_rows(("compiled",), 60)
    _write(output, result, started, budget)
    return result


def mmseg_block_rows(device, batch, height, width, repeats, warmup) -> tuple:
    """``(rows, note)``: the all-pairs blocks beside mmseg's, or no rows and why not (mmseg not importable)."""
    from segattn.errors import MissingPackageError
    from segattn.interop.mmseg_peer import import_mmseg

    try:
        import_mmseg()
    except MissingPackageError as err:
        return [], str(err)
    from mmseg_models import block_cases, over_mmseg

    cases = block_cases(os.path.join(ROOT, "configs", "mmseg"), device, batch, height, width)
    return over_mmseg([measure(case, device, repeats, warmup) for case in cases]), None


def _write(output: str, result: dict, started: float, budget: Budget):
    result["skipped"] = list(budget.skipped)
    result["seconds"] = time.monotonic() - started
    with open(os.path.join(output, "gpu.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(os.path.join(output, "gpu.md"), "w") as f:
        f.write(render(result))


def render(result: dict) -> str:
    env, parts = result["environment"], result["parts"]
    where = env.get("gpu") or f"CPU dry run ({env.get('cpu')})"
    lines = [f"Measured on {where}; driver {env.get('driver')}, CUDA {env.get('cuda')}, torch {env['torch']}, "
             f"Triton {env['triton']}; `python benchmarks/gpu_suite.py` in {result['seconds']:.0f} s.", ""]
    lines += ["Kernel checks (against the float64 reference; backward run twice, bitwise):", "",
              markdown_table(parts["checks"], [("name", "case"), ("max_rel_error", "max rel. error"),
                                               ("tolerance", "tolerance"), ("deterministic", "bitwise repeat"),
                                               ("ok", "ok")]), ""]
    if "ops" in parts:
        lines += ["Criss-cross op and RCCA head:", "",
                  markdown_table(parts["ops"], [("group", "group"), ("name", "impl: dtype B x C x H x W"),
                                                ("fwd_ms", "fwd ms"), ("fwd_bwd_ms", "fwd+bwd ms"),
                                                ("speedup_fwd_bwd", "fwd+bwd speed-up"), ("peak_mb", "peak MB"),
                                                ("memory_vs_reference", "peak vs reference"),
                                                ("extra_mb", "op extra MB"),
                                                ("extra_vs_reference", "extra vs reference")]), ""]
    if "blocks" in parts:
        r = parts["block_ratios"]
        lines += ["RCCA (R=2) against the Non-local block:", "", markdown_table(parts["blocks"]), ""]
        if r:
            lines += [f"Non-local needs {r.get('nonlocal_over_rcca_peak_memory', r['nonlocal_over_rcca_inference_memory']):.1f}x "
                      f"the memory of RCCA; RCCA needs {100 * r['rcca_flops_reduction']:.1f}% fewer FLOPs.", ""]
    if parts.get("mmseg_blocks"):
        lines += ["All-pairs blocks beside mmsegmentation's (same weights; ratios below 1: segattn needs less):", "",
                  markdown_table(parts["mmseg_blocks"],
                                 [("name", "block (precision): side"), ("fwd_ms", "fwd ms"),
                                  ("fwd_ms_vs_mmseg", "vs mmseg"), ("fwd_bwd_ms", "fwd+bwd ms"),
                                  ("fwd_bwd_ms_vs_mmseg", "vs mmseg"), ("act_mb", "saved act. MB"),
                                  ("act_mb_vs_mmseg", "vs mmseg"),
                                  ("infer_mb", "inference peak MB"), ("infer_mb_vs_mmseg", "vs mmseg"),
                                  ("peak_mb", "train peak MB"), ("peak_mb_vs_mmseg", "vs mmseg")]), ""]
    elif parts.get("mmseg_blocks_note"):
        lines += [f"All-pairs blocks beside mmsegmentation's: not measured ({parts['mmseg_blocks_note']}).", ""]
    if "train" in parts:
        lines += ["One training step, CCNet against FCN:", "",
                  markdown_table(parts["train"], [("name", "head: autocast"), ("step_ms", "step ms"),
                                                  ("peak_mb", "peak MB"), ("vs_fcn", "CCNet / FCN")]), ""]
    if result["skipped"]:
        lines += [f"Skipped (time budget spent): {', '.join(result['skipped'])}.", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--output", default="gpu_suite", help="folder for gpu.md / gpu.json, written part by part")
    p.add_argument("--dry-run", action="store_true", help="on the CPU with tiny shapes (Triton's interpreter, no "
                   "torch.compile): checks the command itself; writes no results file")
    p.add_argument("--budget", type=float, default=480, help="seconds; later parts are skipped, and said so, "
                   "once spent")
    args = p.parse_args(argv)
    result = run_suite(args.output, args.dry_run, args.budget)
    with open(os.path.join(args.output, "gpu.md")) as f:
        table = f.read()
    print(table)
    if not args.dry_run:
        write_results("gpu_suite", str(result["environment"]["device"]), result["parts"], table)
    failed = [c["name"] for c in result["parts"]["checks"] if not c["ok"]]
    if failed:
        print(f"kernel checks FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
