import torch

import pytest
from torch import nn

from segattn.analysis.benchmark import (Case, count_flops, markdown_table, measure, op_extra_bytes, peak_cpu_bytes,
                                      saved_activation_bytes)
from segattn.analysis.cases import (Op, all_pairs_attention, attention_cases, head_cases, lean_over_dense, op_cases,
                                    paper_ratios, relative_to_reference)
from segattn.ops import criss_cross_attention


class _Scratch(nn.Module):
    """v * 2 (q and k joined in at zero weight), with a forward temporary of ``nbytes``."""

    def __init__(self, nbytes: int):
        super().__init__()
        self.nbytes = nbytes

    def forward(self, q, k, v):
        if self.nbytes:
            torch.ones(self.nbytes // 4).sum()
        return v * 2 + (q.sum() + k.sum()) * 0


def test_op_flops_match_the_closed_form():
    b, cq, c, h, w = 2, 8, 16, 5, 7
    q, k, v = torch.randn(b, cq, h, w), torch.randn(b, cq, h, w), torch.randn(b, c, h, w)
    # energies and aggregation over the row (W) and the column (H) of every pixel
    assert count_flops(Op(criss_cross_attention), (q, k, v)) == 2 * b * h * w * (h + w) * (cq + c)
    assert count_flops(Op(all_pairs_attention), (q, k, v)) == 2 * b * (h * w) ** 2 * (cq + c)


def test_saved_activation_bytes_counts_attention_matrix():
    q, k, v = (torch.randn(1, 4, 16, 16, requires_grad=True) for _ in range(3))
    n = 16 * 16
    saved = saved_activation_bytes(Op(all_pairs_attention), (q, k, v))
    assert saved >= n * n * 4  # at least the HW x HW softmax output, float32
    assert saved_activation_bytes(Op(criss_cross_attention), (q, k, v)) < saved


def test_measure_row_and_table():
    cases = attention_cases(channels=16, height=9, width=11)
    rows = [measure(c, "cpu", repeats=1, warmup=0) for c in cases]
    assert [r["group"] for r in rows] == ["block"] * 4 + ["op"] * 3 + ["all-pairs"] * 8
    by = {r["name"]: r for r in rows}
    for r in rows:
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["gflops"] > 0 and r["infer_mb"] > 0
        assert r["peak_mb"] is None  # CPU
        assert (r.get("extra_mb") is not None) == (r["group"] == "op")
    # beyond its inputs, the lean op keeps one (B, H, W) float32 log-sum-exp; the reference its weights
    assert by["criss-cross (lean)"]["act_mb"] * 2**20 == 9 * 11 * 4
    assert by["criss-cross (reference)"]["act_mb"] > by["criss-cross (lean)"]["act_mb"]
    ratios = paper_ratios(rows)
    for key in ("", "lean_"):  # against the paper's dense Non-local block and the lean one
        assert 0 < ratios[f"{key}rcca_flops_reduction"] < 1 and ratios[f"{key}nonlocal_over_rcca_inference_memory"] > 0
    assert ratios["rcca_flops_reduction"] == ratios["lean_rcca_flops_reduction"]  # lean: same FLOPs
    lean = {r["name"]: r for r in lean_over_dense(rows)}
    assert sorted(lean) == ["DANet PAM (bf16)", "DANet PAM (fp32)", "Non-local (bf16)", "Non-local (fp32)"]
    for r in lean.values():  # 9 x 11 pixels: the N x N weights are small, yet already the largest saved tensor
        assert r["gflops"] == 1.0 and r["act_mb"] < 1.0
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "RCCA (R=2)" in table


def test_every_registered_head_is_benchmarked():
    from segattn.models import HEADS

    cases = head_cases(in_channels=32, height=9, width=11, channels=16)
    assert [c.name for c in cases] == HEADS.names()  # the toy head of tests/toys.py included
    for row in (measure(c, "cpu", repeats=1, warmup=0) for c in cases):
        assert row["params_m"] > 0 and row["gflops"] > 0 and row["fwd_ms"] > 0 and row["act_mb"] > 0


def test_backward_false_runs_no_backward():
    calls = []

    class _Counting(nn.Module):
        def forward(self, x):
            return _Grad.apply(x)

    class _Grad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            calls.append(1)
            return g * 2

    row = measure(Case("op", "counting", _Counting(), lambda: (torch.randn(4, 4),)), "cpu", 1, 0, backward=False)
    assert not calls and row["fwd_bwd_ms"] is None and "extra_mb" not in row


def test_triton_rows_not_measured_without_cuda():
    cases = op_cases("cpu", batch=1, qk_channels=8, channels=16, sizes=((5, 6),), dtypes=(torch.float32,),
                     head_in=32, impls=("reference", "triton"))
    rows = [measure(c, "cpu", 1, 0) for c in cases]
    triton_rows = [r for r in rows if r["name"].startswith("triton")]
    # the op with NCHW and with channels-last inputs, and the head
    assert len(triton_rows) == 3 and all(r["note"] == "not measured" for r in triton_rows)
    assert "not measured" in markdown_table(rows)
    assert isinstance(cases[0], Case)


def test_op_extra_memory_is_what_the_op_adds():
    """The output and the input gradients are not counted; a temporary of the op is (to within the KBs of the
    op's small tensors, which are not live at the temporary's peak)."""
    q, k, v = torch.randn(1, 2, 4, 5), torch.randn(1, 2, 4, 5), torch.randn(1, 8, 4, 5)
    plain = op_extra_bytes(_Scratch(0), (q, k, v), "cpu")
    nbytes = 8 * 2**20
    with_scratch = op_extra_bytes(_Scratch(nbytes), (q, k, v), "cpu")
    assert plain < 64 * 1024  # v * 2 is the output; no layout copies, no saved attention
    assert abs(with_scratch - nbytes) < 64 * 1024


def test_op_extra_memory_counts_layout_copies():
    """An op that works channels-last pays for copies of NCHW inputs, and not for channels-last ones."""
    def op(q, k, v):
        v = v.contiguous(memory_format=torch.channels_last)
        return v * 2 + (q.sum() + k.sum()) * 0

    q, k = torch.randn(1, 2, 32, 32), torch.randn(1, 2, 32, 32)
    v = torch.randn(1, 64, 32, 32)
    nchw = op_extra_bytes(Op(op), (q, k, v), "cpu")
    cl = op_extra_bytes(Op(op), (q, k, v.contiguous(memory_format=torch.channels_last)), "cpu")
    assert nchw >= v.numel() * 4 > cl


@pytest.mark.skipif(__import__("os").environ.get("TRITON_INTERPRET") != "1", reason="needs Triton's interpreter")
def test_triton_op_extra_memory_against_the_reference():
    """The kernel's extra-memory goal as the GPU suite measures it, on the CPU: the kernel's own allocations (workspace, log-sum-exp)
    are <= 0.25x the reference's for a channels-last model; NCHW inputs add the layout copies."""
    pytest.importorskip("triton")
    cases = op_cases("cpu", batch=1, qk_channels=16, channels=128, sizes=((17, 19),), dtypes=(torch.bfloat16,),
                     impls=("reference", "lean", "triton"), interpret=True, groups=("op",))
    rows = relative_to_reference([measure(c, "cpu", memory_only=True) for c in cases])
    by = {r["name"]: r for r in rows}
    cl = by["triton: bfloat16 1x128x17x19 channels-last"]
    assert cl["extra_vs_reference"] <= 0.25
    assert by["triton: bfloat16 1x128x17x19"]["extra_mb"] > cl["extra_mb"]
    assert "fwd_ms" not in cl  # memory only
    assert by["reference: bfloat16 1x128x17x19"]["extra_vs_reference"] == 1.0


def test_cpu_peak_is_not_lowered_by_earlier_garbage():
    """A tensor allocated under an earlier profile and freed by a garbage-collector pass inside the window
    reached the profiler as a negative event (a triton row of the op table read -5.6 MB so)."""
    import gc

    def make_cycle():
        cycle = {"t": torch.ones(2**20)}  # 4 MB kept alive only by a reference cycle
        cycle["self"] = cycle

    def allocate():
        gc.collect()  # as a collector pass that happens to fall in the window
        torch.ones(2**18).sum()  # 1 MB

    enabled = gc.isenabled()
    gc.disable()
    try:
        peak_cpu_bytes(make_cycle)
        assert peak_cpu_bytes(allocate) >= 2**20
    finally:
        if enabled:
            gc.enable()


def test_alternating_medians_settles_each_job_before_timing_it(monkeypatch):
    """With ``settle`` untimed calls before each timed one, a job slow only on its first call after another job
    ran (a pool woken from its rest) is timed as it runs in a stream. The clock is the jobs' own: no timing."""
    import types

    from segattn.analysis import benchmark

    clock, last, calls = [0.0], [None], []
    monkeypatch.setattr(benchmark, "time", types.SimpleNamespace(perf_counter=lambda: clock[0],
                                                                 sleep=lambda s: None))

    def job(name):
        def run():
            clock[0] += 0.020 if last[0] != name else 0.001  # the first call after the other job: 20 ms
            last[0] = name
            calls.append(name)
        return run

    jobs = {"a": job("a"), "b": job("b")}
    assert benchmark.alternating_medians(jobs, repeats=3, warmup=1, pause_s=1.0) == pytest.approx({"a": 20, "b": 20})
    calls.clear()
    settled = benchmark.alternating_medians(jobs, repeats=3, warmup=1, pause_s=1.0, settle=1)
    assert settled == pytest.approx({"a": 1, "b": 1}) and calls.count("a") == 1 + 3 * 2
