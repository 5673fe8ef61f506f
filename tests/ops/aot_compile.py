"""Ahead-of-time compile of the Triton criss-cross kernels for a CUDA architecture, no GPU needed.

Catches what the CPU interpreter cannot: code the GPU compiler rejects, shared
memory past a block's limit, and register spills. The launches compiled are the
dispatch's own (``launch_plan``) for every dtype at the benchmark shapes and at
the extremes of what ``check_supported`` lets through (the most q/k channels of
each TILES row, many value channels, long lines, a tiny case): every variant
(first/second pass, accumulate or not) at the ``TILES`` caps and at the 16
floor. Tiles in between are not compiled one by one. Each compiled kernel's
PTX goes through the ptxas that ships with Triton (``ptxas -v``) for its
registers, stack frame and spill stores.

Run by the test suite in a subprocess without TRITON_INTERPRET:
``python tests/ops/aot_compile.py 90`` prints one JSON list of
``{kernel, dtype, shape, meta, shared, registers, spill_bytes, stack_bytes}``.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import triton

import torch

from segattn.ops import triton_kernels as tk

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
BENCHMARK_SHAPES = ((4, 64, 512, 97, 97), (4, 64, 512, 129, 257))  # B, Cq, C, H, W


def extreme_shapes(dtype: torch.dtype):
    """Each TILES row at its widest q/k with many value channels and long lines, and a tiny case."""
    rows = tk.TILES["tf32" if dtype == torch.float32 else "16bit"]
    return tuple((1, limit, 2048, 257, 257) for limit, _ in rows) + ((1, 8, 16, 5, 7),)

KERNELS = {"fwd": tk._fwd_line_kernel, "delta": tk._bwd_delta_kernel, "query": tk._bwd_query_kernel,
           "key": tk._bwd_key_kernel}


def _signature(kind: str, dtype: str) -> dict:
    t, f = f"*{dtype}", "*fp32"
    names = {
        "fwd": [("q_ptr", t), ("k_ptr", t), ("v_ptr", t), ("out_ptr", t), ("lse_in_ptr", f), ("lse_ptr", f),
                "CQ", "C", "L", "line_stride", "pos_stride", "HW", "N_CBLOCKS"],
        "delta": [("do_ptr", t), ("o_ptr", t), ("delta_ptr", f), "C", "NPIX"],
        "query": [("q_ptr", t), ("k_ptr", t), ("v_ptr", t), ("do_ptr", t), ("lse_ptr", f), ("delta_ptr", f),
                  ("dq_ptr", t), ("p_ws", t), ("ds_ws", t), "CQ", "C", "L", "line_stride", "pos_stride", "HW",
                  "N_LINES"],
        "key": [("x_ptr", t), ("w_ws", t), ("dx_ptr", t), "CX", "L", "line_stride", "pos_stride", "HW", "N_LINES",
                "N_CBLOCKS"],
    }[kind]
    return dict(n if isinstance(n, tuple) else (n, "i32") for n in names)


def ptxas_usage(ptx: str, arch: int) -> dict:
    """Registers, stack frame and spill-store bytes that ptxas reports for one kernel's PTX."""
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        report = subprocess.run([ptxas, "-v", "--gpu-name", gpu, path, "-o", os.path.join(tmp, "k.cubin")],
                                capture_output=True, text=True, check=True).stderr

    def number(pattern):
        found = re.search(pattern, report)
        return int(found.group(1)) if found else 0

    return {"registers": number(r"Used (\d+) registers"), "spill_bytes": number(r"(\d+) bytes spill stores"),
            "stack_bytes": number(r"(\d+) bytes stack frame")}


def plans(dtypes=tuple(DTYPES)):
    """Unique (kernel, dtype, meta) launches of the dispatch over the shapes above, with the first shape seen."""
    seen = {}
    for dtype in dtypes:
        for shape in BENCHMARK_SHAPES + extreme_shapes(DTYPES[dtype]):
            for launch in tk.launch_plan(*shape, DTYPES[dtype]):
                key = (launch["kernel"], dtype, json.dumps(launch["meta"], sort_keys=True))
                seen.setdefault(key, shape)
    return seen


def compile_all(arch: int = 90, dtypes=tuple(DTYPES)) -> list:
    """Compile every launch ``plans`` finds for CUDA compute capability ``arch``; needs TRITON_INTERPRET unset."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    rows = []
    for (kind, dtype, meta_json), shape in plans(dtypes).items():
        meta = json.loads(meta_json)
        signature = {**_signature(kind, dtype), **{k: "constexpr" for k in meta}}
        compiled = triton.compile(ASTSource(fn=KERNELS[kind], signature=signature, constexprs=meta), target=target,
                                  options=dict(tk.LAUNCH))
        rows.append({"kernel": kind, "dtype": dtype, "shape": list(shape), "meta": meta,
                     "shared": compiled.metadata.shared, **ptxas_usage(compiled.asm["ptx"], arch)})
    return rows


if __name__ == "__main__":
    print(json.dumps(compile_all(int(sys.argv[1]) if len(sys.argv) > 1 else 90)))
