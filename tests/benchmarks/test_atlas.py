"""benchmarks/atlas.py: its entries are the registries', each trains on both probes, its picture is drawn."""
import json
import os
import subprocess
import sys

from helpers import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def test_entries_are_every_registered_head_and_block_each_with_its_family():
    from atlas import FAMILY_COLOURS, entries

    from segattn.models import ATTENTION, HEADS

    found = {name: family for name, _, family in entries()}
    shipped = [h for h in HEADS if HEADS[h].__module__.startswith("segattn.")]
    assert list(found) == shipped + [f"fcn+{b}" for b in ATTENTION if ATTENTION[b].__module__.startswith("segattn.")]
    assert found["fcn"] == "none" and set(found.values()) <= set(FAMILY_COLOURS)
    assert all(family != "none" for name, family in found.items() if name != "fcn")  # every attention has one
    assert found["fcn+dcn"] == found["fcn+stn"] == "regions" and found["fcn+se"] == "channel"


def test_a_small_atlas_writes_its_results_table_and_picture(tmp_path):
    args = ["--entries", "fcn,fcn+se", "--seeds", "0", "--output", str(tmp_path), "--figure",
            str(tmp_path / "atlas.png"), "train.max_iters=2", "train.val_interval=2", "train.checkpoint_interval=2"]
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "atlas.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = tmp_path.glob("atlas-cpu-torch*.json")
    result = json.loads(path.read_text())
    assert sorted((r["name"], r["probe"]) for r in result["rows"]) == [
        ("fcn", "keys"), ("fcn", "pairs"), ("fcn+se", "keys"), ("fcn+se", "pairs")]
    fcn, se = result["entries"]
    assert (fcn["family"], se["family"]) == ("none", "channel") and se["objects"] and se["row_column"]
    assert fcn["demo"] is not None and se["demo"] is None  # the FCN's demo results row; no demo run of fcn+se
    table = path.with_suffix(".md").read_text()
    assert "| fcn+se | channel |" in table and "probe 2: objects %" in table
    assert (tmp_path / "atlas.png").stat().st_size > 10000
    (tmp_path / "atlas.png").unlink()
    again = subprocess.run([sys.executable, os.path.join("benchmarks", "atlas.py"), "--plot", str(path), "--figure",
                            str(tmp_path / "atlas.png")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and (tmp_path / "atlas.png").is_file()
    bad = subprocess.run([sys.executable, os.path.join("benchmarks", "atlas.py"), "--entries", "fcn,sq"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--entries: no entry sq" in bad.stderr and "Traceback" not in bad.stderr

    # --reuse: that file's runs stand in for the same entry, probe and seed; only the missing seed runs
    more = ["--entries", "fcn", "--seeds", "0,1", "--reuse", str(path), "--output", str(tmp_path / "more"),
            "--figure", str(tmp_path / "more.png"), *args[-3:]]
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "atlas.py"), *more], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "seed 0" not in proc.stderr and "fcn on the keys probe, seed 1" in proc.stderr
    (again_path,) = (tmp_path / "more").glob("atlas-*.json")
    rows = json.loads(again_path.read_text())["rows"]
    before = {(r["probe"], r["seed"]): r for r in result["rows"] if r["name"] == "fcn"}
    assert sorted((r["probe"], r["seed"]) for r in rows) == [("keys", 0), ("keys", 1), ("pairs", 0), ("pairs", 1)]
    assert all(r == before[(r["probe"], 0)] for r in rows if r["seed"] == 0)  # taken as they were, with their commit
    assert "2 reused from " + path.name in again_path.with_suffix(".md").read_text()
    other = subprocess.run([sys.executable, os.path.join("benchmarks", "atlas.py"), *more[:-3], "train.max_iters=3"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "its runs had overrides" in other.stderr and "train.max_iters=3" in other.stderr

