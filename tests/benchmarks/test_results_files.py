"""Every benchmark script writes its results file: the rows, the command, the machine, the date and the commit."""
import json
import os
import subprocess
import sys

from helpers import ROOT


def test_a_script_writes_its_table_with_how_it_was_measured(tmp_path):
    args = ["--size", "9", "11", "--channels", "32", "--block-channels", "16", "--repeats", "1", "--warmup", "0",
            "--output", str(tmp_path)]
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "heads.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (json_file,) = tmp_path.glob("heads-cpu-torch*.json")
    result = json.loads(json_file.read_text())
    assert result["command"] == "python benchmarks/heads.py " + " ".join(args)
    assert result["machine"]["cores"] == os.cpu_count() and result["machine"]["torch"]
    assert result["date"][:4].isdigit() and result["commit"] in json_file.name
    assert {r["group"] for r in result["rows"]} == {"head", "registered-block", "block", "op", "all-pairs"}
    from segattn.models import ATTENTION, HEADS

    # every registered head and attention block has its row, read from the registries
    assert {r["name"] for r in result["rows"] if r["group"] == "registered-block"} == set(ATTENTION.names())
    shipped = {name for name in HEADS.names() if HEADS[name].__module__.startswith("segattn.")}  # the script's
    assert {r["name"] for r in result["rows"] if r["group"] == "head"} == shipped
    assert len(result["lean_over_dense"]) == 4
    table = json_file.with_suffix(".md").read_text()
    assert table.startswith(f"`{result['command']}`") and f"commit {result['commit']}" in table
    assert "| block | RCCA (R=2) |" in table and "against the lean Non-local block" in table
    assert "| DANet PAM (bf16) |" in table  # the lean / dense table


def test_a_bad_choice_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "op.py"), "--impls", "lean,fast",
                           "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "--impls takes reference, lean, compiled, triton; got fast" in proc.stderr
    assert not list(tmp_path.iterdir())
