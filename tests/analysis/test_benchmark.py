import torch

from segattn.analysis.benchmark import (Case, _Op, attention_cases, count_flops, dense_attention, markdown_table,
                                      measure, op_cases, paper_ratios, saved_activation_bytes)
from segattn.ops import criss_cross_attention


def test_op_flops_match_the_closed_form():
    b, cq, c, h, w = 2, 8, 16, 5, 7
    q, k, v = torch.randn(b, cq, h, w), torch.randn(b, cq, h, w), torch.randn(b, c, h, w)
    # energies and aggregation over the row (W) and the column (H) of every pixel
    assert count_flops(_Op(criss_cross_attention), (q, k, v)) == 2 * b * h * w * (h + w) * (cq + c)
    assert count_flops(_Op(dense_attention), (q, k, v)) == 2 * b * (h * w) ** 2 * (cq + c)


def test_saved_activation_bytes_counts_attention_matrix():
    q, k, v = (torch.randn(1, 4, 16, 16, requires_grad=True) for _ in range(3))
    n = 16 * 16
    saved = saved_activation_bytes(_Op(dense_attention), (q, k, v))
    assert saved >= n * n * 4  # at least the HW x HW softmax output, float32
    assert saved_activation_bytes(_Op(criss_cross_attention), (q, k, v)) < saved


def test_measure_row_and_table():
    cases = attention_cases(channels=16, height=9, width=11)
    rows = [measure(c, "cpu", repeats=1, warmup=0) for c in cases]
    assert [r["group"] for r in rows] == ["block", "block", "block", "op", "op", "op"]
    by = {r["name"]: r for r in rows}
    for r in rows:
        assert r["fwd_ms"] > 0 and r["fwd_bwd_ms"] > 0 and r["gflops"] > 0 and r["infer_mb"] > 0
        assert r["peak_mb"] is None  # CPU
    # beyond its inputs, the lean op keeps one (B, H, W) float32 log-sum-exp; the reference its weights
    assert by["criss-cross (lean)"]["act_mb"] * 2**20 == 9 * 11 * 4
    assert by["criss-cross (reference)"]["act_mb"] > by["criss-cross (lean)"]["act_mb"]
    ratios = paper_ratios(rows)
    assert 0 < ratios["rcca_flops_reduction"] < 1 and ratios["nonlocal_over_rcca_inference_memory"] > 0
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "RCCA (R=2)" in table


def test_triton_rows_not_measured_without_cuda():
    cases = op_cases("cpu", batch=1, qk_channels=8, channels=16, sizes=((5, 6),), dtypes=(torch.float32,),
                     head_in=32, impls=("reference", "triton"))
    rows = [measure(c, "cpu", 1, 0) for c in cases]
    triton_rows = [r for r in rows if r["name"].startswith("triton")]
    assert len(triton_rows) == 2 and all(r["note"] == "not measured" for r in triton_rows)
    assert "not measured" in markdown_table(rows)
    assert isinstance(cases[0], Case)


def test_gpu_suite_dry_run_writes_every_part(tmp_path):
    """The one-call GPU proof, run as CI can: CPU, tiny shapes, the kernel under Triton's interpreter."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, os.path.join(root, "tools", "benchmark.py"), "--suite", "gpu", "--dry-run",
                           "--output", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["dry_run"] and result["environment"]["triton"] and not result["skipped"]
    checks = result["parts"]["checks"]
    assert {c["name"].split()[0] for c in checks} == {"float32/TF32", "float16", "bfloat16"}
    assert all(c["ok"] and c["deterministic"] for c in checks)
    names = {r["name"].split(":")[0] for r in result["parts"]["ops"]}
    assert names == {"reference", "lean", "triton"} and all(r.get("fwd_bwd_ms") for r in result["parts"]["ops"])
    assert {r["name"] for r in result["parts"]["train"]} == {"ccnet: float32", "ccnet: bfloat16", "fcn: float32",
                                                             "fcn: bfloat16"}
    markdown = (tmp_path / "gpu.md").read_text()
    assert "Kernel checks" in markdown and "CCNet against FCN" in markdown and "Triton 3" in markdown
