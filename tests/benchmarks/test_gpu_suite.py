"""benchmarks/gpu_suite.py: the one-call GPU proof, dry-run on the CPU as CI can."""
import json
import os
import subprocess
import sys

from helpers import ROOT


def test_gpu_suite_dry_run_writes_every_part(tmp_path):
    """The one-call GPU proof, run as CI can: CPU, tiny shapes, the kernel under Triton's interpreter."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_suite.py"), "--dry-run",
                           "--output", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["dry_run"] and result["environment"]["triton"] and not result["skipped"]
    checks = result["parts"]["checks"]
    assert {c["name"].split()[0] for c in checks} == {"float32/TF32", "float16", "bfloat16"}
    assert all(c["ok"] and c["deterministic"] for c in checks)
    names = {r["name"].split(":")[0] for r in result["parts"]["ops"]}
    assert names == {"reference", "lean", "triton"} and all(r.get("fwd_bwd_ms") for r in result["parts"]["ops"])
    op_rows = [r for r in result["parts"]["ops"] if r["group"] == "op"]
    assert len(op_rows) == 2 * 3 * 2  # float32 / bf16 x three implementations x NCHW / channels-last inputs
    assert sum(r["name"].endswith("channels-last") for r in op_rows) == 6
    assert all(r["extra_mb"] >= 0 and r["extra_vs_reference"] > 0 for r in op_rows)
    assert {r["name"] for r in result["parts"]["train"]} == {"ccnet: float32", "ccnet: bfloat16", "fcn: float32",
                                                             "fcn: bfloat16"}
    blocks = result["parts"]["mmseg_blocks"]  # mmseg is installed with the tests: the part must have run
    assert [r["name"] for r in blocks] == [f"{block} ({dtype}): {side}" for block in ("DANet PAM", "Non-local")
                                           for dtype in ("fp32", "bf16") for side in ("segattn", "mmseg 1.2.2")]
    assert all(r["fwd_bwd_ms_vs_mmseg"] > 0 and r["act_mb_vs_mmseg"] > 0 for r in blocks[::2])
    markdown = (tmp_path / "gpu.md").read_text()
    assert "Kernel checks" in markdown and "CCNet against FCN" in markdown and "Triton 3" in markdown
    assert "op extra MB" in markdown and "beside mmsegmentation's" in markdown


def test_mmseg_blocks_part_says_why_when_mmseg_is_missing(monkeypatch):
    """Without mmsegmentation the GPU session still gets every other part, and the tables say what is missing."""
    import gpu_suite

    from segattn.errors import MissingPackageError
    from segattn.interop import mmseg_peer

    def missing():
        raise MissingPackageError("mmsegmentation is not importable (No module named 'mmseg'); install it with: X")

    monkeypatch.setattr(mmseg_peer, "import_mmseg", missing)
    rows, note = gpu_suite.mmseg_block_rows("cpu", 1, 3, 3, 1, 0)
    assert rows == [] and note.startswith("mmsegmentation is not importable")
    result = {"environment": {"torch": "2", "triton": "3", "cpu": "x86_64"}, "seconds": 1.0, "skipped": [],
              "parts": {"checks": [], "mmseg_blocks": rows, "mmseg_blocks_note": note}}
    assert "beside mmsegmentation's: not measured (mmsegmentation is not importable" in gpu_suite.render(result)
