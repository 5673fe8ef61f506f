#!/usr/bin/env python
"""Work and memory traffic of the Triton criss-cross kernels, counted from the dispatch's own launch plan.

How the kernel is counted:

* backward work: multiply-adds of every product the backward kernels form for
  valid (query, key) pairs and channels, against the minimum of one recompute
  of the energies S and one each of dP = dO v^T, dq = dS k, dk = dS^T q and
  dv = P^T dO: ``B HW (H+W-1) (3 Cq + 2 C)``. Tile padding is reported apart
  (``bwd_macs_issued``: what the tensor cores run, padded tiles included).
* forward traffic: bytes every program of the forward loads and stores, before
  any cache (a tile re-read by another program counts again), against reading
  q, k, v once and writing the output once: ``B HW (2 Cq + 2 C)`` elements.

How low the forward can go by this count, for any design rather than this plan:

* ``two_pass_floor``: a design of two line passes that meet in memory (this
  kernel's) reads q, k and v in both passes and writes the output in the first,
  reads and rewrites it in the second: ``4 Cq + 5 C`` elements per pixel,
  whatever the tiles.
* ``one_pass_floor``: a design that writes each output once must give one
  program the values of every row and column its outputs lie on. A program
  whose outputs cover r rows and s columns reads ``(W/s + H/r)`` values per
  output and channel; its float32 accumulators (r s positions x its channel
  tile) must stay on chip. The attention weights it needs either come from q
  and k read again for each channel tile, or are written once by a first
  kernel and read for each channel tile (``H + W - 1`` per pixel), whichever
  is cheaper. The floor is the best of every such tiling (channel tiles of 16
  or more, as ``tl.dot`` takes) that fits ``on_chip_bytes``, generously taking
  all of an SM's registers and shared memory for the accumulators alone. It is
  a bound for these two families of schedules, not for every algorithm.
"""
import sys

import torch

from _common import write_results
from segattn.ops.triton_kernels import launch_plan


def _cdiv(a, b):
    return -(-a // b)


def accounting(b: int, cq: int, c: int, h: int, w: int, dtype: torch.dtype = torch.bfloat16) -> dict:
    e = torch.empty((), dtype=dtype).element_size()
    f32 = 4
    fwd_bytes = bwd_macs = bwd_issued = 0
    for launch in launch_plan(b, cq, c, h, w, dtype):
        m = launch["meta"]
        if launch["kernel"] == "delta":
            bwd_macs += b * h * w * c
            bwd_issued += b * h * w * c
            continue
        length, lines = launch["L"], b * launch["n_lines"]
        pad = lambda n, tile: _cdiv(n, tile) * tile  # noqa: E731
        if launch["kernel"] == "fwd":
            nq, ncb = _cdiv(length, m["BLOCK_Q"]), _cdiv(c, m["BLOCK_C"])
            per_line = (ncb * length * cq  # q, once per channel tile
                        + nq * ncb * length * cq  # k: every key, per query block and channel tile
                        + nq * length * c  # v: every key's channels, per query block
                        + (1 if m["FIRST"] else 2) * length * c) * e  # out: written (row pass: read and rewritten)
            per_line += (length if m["FIRST"] else (ncb + 1) * length) * f32  # log-sum-exp
            fwd_bytes += lines * per_line
        elif launch["kernel"] == "query":  # S, dP, dq for every (query, key) of the line
            bwd_macs += lines * length * length * (2 * cq + c)
            lq, lk = pad(length, m["BLOCK_Q"]), pad(length, m["BLOCK_K"])
            bwd_issued += lines * lq * lk * (2 * m["BLOCK_CQ"] + pad(c, m["BLOCK_C"]))
        else:  # key kernels: dk (q/k channels) or dv (value channels)
            channels = launch["channels"]
            bwd_macs += lines * length * length * channels
            bwd_issued += lines * pad(length, m["BLOCK_Q"]) * pad(length, m["BLOCK_K"]) * pad(channels, m["BLOCK_C"])
    bwd_min = b * h * w * (h + w - 1) * (3 * cq + 2 * c)
    fwd_min = b * h * w * (2 * cq + 2 * c) * e
    return {"shape": (b, cq, c, h, w), "dtype": str(dtype).replace("torch.", ""),
            "bwd_macs": bwd_macs, "bwd_macs_min": bwd_min, "bwd_work_ratio": bwd_macs / bwd_min,
            "bwd_macs_issued": bwd_issued, "bwd_issued_ratio": bwd_issued / bwd_min,
            "fwd_bytes": fwd_bytes, "fwd_bytes_min": fwd_min, "fwd_traffic_ratio": fwd_bytes / fwd_min}


H100_ON_CHIP_BYTES = 65536 * 4 + 233472  # one SM: the register file and the shared memory


def two_pass_floor(cq: int, c: int) -> float:
    """Forward traffic / min of any two-pass design: ``(4 Cq + 5 C) / (2 Cq + 2 C)``."""
    return (4 * cq + 5 * c) / (2 * cq + 2 * c)


def one_pass_floor(cq: int, c: int, h: int, w: int, on_chip_bytes: int = H100_ON_CHIP_BYTES) -> dict:
    """Forward traffic / min of the best single-pass tiling whose float32 accumulators fit ``on_chip_bytes``.

    Per output pixel, with ``n = W/s + H/r`` lines read per output and ``t = C / Ct`` channel tiles: values
    ``n C``; weights either recomputed, ``t (1 + n) Cq`` of queries and keys, or stored,
    ``(1 + n) Cq + (H + W - 1)(1 + t)``, the cheaper; the output ``C``. Over tiles of r rows, s columns
    and Ct channels (a power of two, 16 to C). Returns the ratio and the tiling that reaches it.
    """
    best = None
    ct = 16
    while ct <= max(16, c):
        positions = on_chip_bytes // (4 * ct)
        for r in range(1, h + 1):
            s = min(w, positions // r)
            if s < 1:
                break
            lines, tiles = w / s + h / r, _cdiv(c, ct)
            weights = min(tiles * (1 + lines) * cq, (1 + lines) * cq + (h + w - 1) * (1 + tiles))
            elements = lines * c + weights + c
            if best is None or elements < best[0]:
                best = (elements, r, s, ct)
        ct *= 2
    elements, r, s, ct = best
    return {"ratio": elements / (2 * cq + 2 * c), "rows": r, "columns": s, "channels": ct}


def accounting_table(shapes=((4, 64, 512, 97, 97), (4, 64, 512, 129, 257)),
                     dtypes=(torch.bfloat16, torch.float32)) -> str:
    lines = ["| B, Cq, C, H, W | dtype | backward work / min | (tiles as issued) | forward traffic / min | "
             "two-pass floor | one-pass floor (H100) |",
             "|---|---|---|---|---|---|---|"]
    for dtype in dtypes:
        for shape in shapes:
            a = accounting(*shape, dtype)
            _, cq, c, h, w = shape
            one = one_pass_floor(cq, c, h, w)
            lines.append(f"| {', '.join(map(str, shape))} | {a['dtype']} | {a['bwd_work_ratio']:.2f}x | "
                         f"{a['bwd_issued_ratio']:.2f}x | {a['fwd_traffic_ratio']:.2f}x | "
                         f"{two_pass_floor(cq, c):.2f}x | {one['ratio']:.2f}x ({one['rows']}x{one['columns']} "
                         f"pixels x {one['channels']} channels) |")
    return "\n".join(lines)


def main(argv=None):
    """``python benchmarks/kernel_accounting.py``: the table, counted (no kernel runs), as a results file."""
    import argparse

    p = argparse.ArgumentParser(description="work and traffic of the Triton kernels, from their launch plan")
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    args = p.parse_args(argv)
    table = accounting_table()
    print(table)
    write_results("kernel_accounting", "cpu", [], table, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
