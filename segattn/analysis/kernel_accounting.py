"""Work and memory traffic of the Triton criss-cross kernels, counted from the dispatch's own launch plan.

The issue's accounting, so that before/after figures compare:

* backward work: multiply-adds of every product the backward kernels form for
  valid (query, key) pairs and channels, against the minimum of one recompute
  of the energies S and one each of dP = dO v^T, dq = dS k, dk = dS^T q and
  dv = P^T dO: ``B HW (H+W-1) (3 Cq + 2 C)``. Tile padding is reported apart
  (``bwd_macs_issued``: what the tensor cores run, padded tiles included).
* forward traffic: bytes every program of the forward loads and stores, before
  any cache (a tile re-read by another program counts again), against reading
  q, k, v once and writing the output once: ``B HW (2 Cq + 2 C)`` elements.
"""
import torch

from ..ops.triton_kernels import launch_plan


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


def accounting_table(shapes=((4, 64, 512, 97, 97), (4, 64, 512, 129, 257)),
                     dtypes=(torch.bfloat16, torch.float32)) -> str:
    lines = ["| B, Cq, C, H, W | dtype | backward work / min | (tiles as issued) | forward traffic / min |",
             "|---|---|---|---|---|"]
    for dtype in dtypes:
        for shape in shapes:
            a = accounting(*shape, dtype)
            lines.append(f"| {', '.join(map(str, shape))} | {a['dtype']} | {a['bwd_work_ratio']:.2f}x | "
                         f"{a['bwd_issued_ratio']:.2f}x | {a['fwd_traffic_ratio']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(accounting_table())
