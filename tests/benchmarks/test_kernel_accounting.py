"""The Triton kernels' work and traffic accounting, read from the dispatch's launch plan."""
import pytest
import torch

pytest.importorskip("triton")

from kernel_accounting import accounting, one_pass_floor, two_pass_floor  # noqa: E402
from segattn.ops import triton_kernels as tk  # noqa: E402

BENCHMARK = [(4, 64, 512, 97, 97), (4, 64, 512, 129, 257)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", BENCHMARK)
def test_backward_computes_each_product_once(shape, dtype):
    a = accounting(*shape, dtype)
    assert a["bwd_work_ratio"] <= 1.3  # each product formed about once
    assert a["bwd_work_ratio"] < 1.02  # S, dP, dq, dk, dv once each; only the D = rowsum(dO O) pass on top
    assert a["bwd_macs_issued"] >= a["bwd_macs"]  # padded tiles only add


def test_minimum_is_the_closed_form():
    b, cq, c, h, w = BENCHMARK[0]
    a = accounting(b, cq, c, h, w)
    assert a["bwd_macs_min"] == b * h * w * (h + w - 1) * (3 * cq + 2 * c)
    assert a["fwd_bytes_min"] == b * h * w * (2 * cq + 2 * c) * 2


def test_forward_traffic_follows_the_plan(monkeypatch):
    """A whole line per query block reads each value once per pass: the traffic the accounting reports drops."""
    shape = (1, 64, 512, 64, 64)
    before = accounting(*shape)["fwd_traffic_ratio"]
    rows = [(limit, dict(caps, fwd_q=32)) for limit, caps in tk.TILES["16bit"]]
    monkeypatch.setitem(tk.TILES, "16bit", rows)
    after = accounting(*shape)["fwd_traffic_ratio"]
    assert after > before  # two query blocks per line: k and v read twice
    # one query block: q and k per channel tile, v once, out written once (column) and read+written (row)
    b, cq, c, h, w = shape
    ncb = 512 // 128
    expected = 2 * b * h * w * (ncb * cq + ncb * cq + c) * 2 + 3 * b * h * w * c * 2 + b * h * w * (1 + ncb + 1) * 4
    assert accounting(*shape)["fwd_bytes"] != expected  # patched plan
    monkeypatch.undo()
    assert accounting(*shape)["fwd_bytes"] == expected


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", BENCHMARK + [(1, 8, 16, 5, 7), (2, 256, 2048, 33, 65)])
def test_the_plan_is_never_below_the_two_pass_floor(shape, dtype):
    """The kernel is a two-pass design: its counted traffic cannot undercut 4 Cq + 5 C per pixel."""
    _, cq, c, _, _ = shape
    assert accounting(*shape, dtype)["fwd_traffic_ratio"] >= two_pass_floor(cq, c)


def test_traffic_floors():
    assert two_pass_floor(64, 512) == pytest.approx(2816 / 1152)  # 2.44x: no two-pass design gets below it
    # with room for the whole image's accumulators, one pass reads values twice (row and column), q and k's
    # lines once, and writes once: 3 C + 3 Cq against 2 C + 2 Cq
    ideal = one_pass_floor(64, 512, 97, 97, on_chip_bytes=10**12)
    assert ideal["ratio"] == pytest.approx(1.5) and (ideal["rows"], ideal["columns"]) == (97, 97)
    for shape in BENCHMARK:  # an H100 SM holds a 44x44 tile of 64 channels at most: far above 2x
        _, cq, c, h, w = shape
        floor = one_pass_floor(cq, c, h, w)
        assert floor["ratio"] > 2.0
        assert floor["rows"] * floor["columns"] * floor["channels"] * 4 <= 65536 * 4 + 233472
    assert one_pass_floor(64, 512, 97, 97, on_chip_bytes=2 * 2**20)["ratio"] < one_pass_floor(64, 512, 97, 97)["ratio"]
