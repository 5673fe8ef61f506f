"""Ahead-of-time compile of every Triton criss-cross kernel for a CUDA architecture, no GPU needed.

Catches what the CPU interpreter cannot: code the GPU compiler rejects, and
shared memory past a block's limit. Each kernel is compiled, per dtype, at the
largest tiles the dispatch can choose (the most q/k channels ``check_supported``
lets through for that dtype, the ``MAX_BLOCKS`` line and channel tiles):
shared memory only grows with the tiles, so that plan bounds every other.
Run by the test suite in a subprocess without TRITON_INTERPRET:
``python tests/ops/aot_compile.py 90`` prints ``{"kernel dtype": shared bytes}`` as JSON.
"""
import json
import sys

import triton

import torch

from segattn.ops.triton_kernels import (MAX_BLOCKS, _bwd_delta_kernel, _bwd_dk_kernel, _bwd_dq_kernel, _bwd_dv_kernel,
                                        _fwd_line_kernel, max_qk_channels)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def compile_all(arch: int = 90, dtypes=("fp32", "bf16", "fp16")):
    """Compile every kernel ahead of time for CUDA compute capability ``arch``, no GPU needed.

    Returns ``{(kernel, dtype): shared memory bytes}``. Needs TRITON_INTERPRET unset.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", arch, 32)
    geometry = {"CQ": "i32", "C": "i32", "L": "i32", "line_stride": "i32", "pos_stride": "i32", "HW": "i32"}
    out = {}
    for dtype in dtypes:
        ptr, prec = f"*{dtype}", "ieee" if dtype == "fp32" else "tf32"
        line = MAX_BLOCKS["line"]
        blocks = {"BLOCK_Q": line, "BLOCK_K": line, "BLOCK_CQ": max_qk_channels(DTYPES[dtype])}
        fwd_meta = {"FIRST": False, "MASK_SELF": True, "PRECISION": prec, **blocks, "BLOCK_C": MAX_BLOCKS["c_fwd"]}
        bwd_meta = {"ACCUM": True, "MASK_SELF": True, "PRECISION": prec, **blocks, "BLOCK_C": MAX_BLOCKS["c_bwd"]}
        tensors = lambda names, fp32: {n: ("*fp32" if n in fp32 else ptr) for n in names}  # noqa: E731
        jobs = [
            (_fwd_line_kernel, {**tensors(["q_ptr", "k_ptr", "v_ptr", "out_ptr", "lse_in_ptr", "lse_ptr"],
                                          ["out_ptr", "lse_in_ptr", "lse_ptr"]), **geometry, "N_CBLOCKS": "i32"},
             fwd_meta),
            (_bwd_dq_kernel, {**tensors(["q_ptr", "k_ptr", "v_ptr", "do_ptr", "lse_ptr", "delta_ptr", "dq_ptr"],
                                        ["lse_ptr", "delta_ptr", "dq_ptr"]), **geometry}, bwd_meta),
            (_bwd_dk_kernel, {**tensors(["q_ptr", "k_ptr", "v_ptr", "do_ptr", "lse_ptr", "delta_ptr", "dk_ptr"],
                                        ["lse_ptr", "delta_ptr", "dk_ptr"]), **geometry}, bwd_meta),
            (_bwd_dv_kernel, {**tensors(["q_ptr", "k_ptr", "do_ptr", "lse_ptr", "dv_ptr"], ["lse_ptr", "dv_ptr"]),
                              **geometry, "N_CBLOCKS": "i32"}, bwd_meta),
            (_bwd_delta_kernel, {**tensors(["do_ptr", "o_ptr", "delta_ptr"], ["delta_ptr"]), "C": "i32",
                                 "HW": "i32"}, {"BLOCK_P": 64, "BLOCK_C": 64}),
        ]
        for fn, signature, meta in jobs:
            signature = {**signature, **{k: "constexpr" for k in meta}}
            compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=meta), target=target)
            out[(fn.__name__, dtype)] = compiled.metadata.shared
    return out


if __name__ == "__main__":
    result = compile_all(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
    print(json.dumps({f"{k[0]} {k[1]}": v for k, v in result.items()}))
