"""benchmarks/compiled_eval.py and compiled_train.py: eager and compiled side by side, on a tiny model."""
import json
import os
import subprocess
import sys

import torch

from helpers import ENCODER, ROOT

# the session's small demo split as it is (data.demo=false) and the tests' tiny encoder: two compiles, not twenty
SMALL = ["data.demo=false", f"model.encoder.name={ENCODER}", "model.channels=16", "model.aux.channels=8"]


def bench(script, tmp_path, *args):
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", script), "--repeats", "1", "--warmup", "0",
                           "--output", str(tmp_path), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_compiled_eval_times_and_compares_labels(demo_root, tmp_path):
    from segattn.configure import load_tool_config
    from segattn.models import build_model

    data = [f"data.root={demo_root}", *SMALL]
    cfg = load_tool_config(os.path.join(ROOT, "configs", "demo", "fcn.yaml"), data)
    torch.manual_seed(0)
    (tmp_path / "ckpt" / "demo_fcn").mkdir(parents=True)
    torch.save({"model": build_model(cfg).state_dict()}, tmp_path / "ckpt" / "demo_fcn" / "best.pth")
    proc = bench("compiled_eval.py", tmp_path, "--heads", "fcn", "--checkpoints", tmp_path / "ckpt", *data)
    assert "training configs/demo" not in proc.stderr
    (path,) = tmp_path.glob("compiled_eval-cpu-torch*.json")
    (row,) = json.loads(path.read_text())["rows"]
    for name in ("eager", "compiled", "frozen"):
        assert row[f"{name}_ms"] > 0 and row[f"{name}_same"] >= 99.9
    assert row["eager_same"] == 100 and row["compiled_compile_s"] > 0 and row["frozen_compile_s"] > 0
    assert "| fcn | compiled, freezing (eval.compile=on) |" in path.with_suffix(".md").read_text()


def test_compiled_train_times_steps_and_the_run(demo_root, tmp_path):
    bench("compiled_train.py", tmp_path, "--config", "configs/demo/fcn.yaml", "--amp", "off",
          f"data.root={demo_root}", *SMALL, "data.crop_size=[64,96]", "train.batch_size=2", "train.max_iters=50")
    (path,) = tmp_path.glob("compiled_train-cpu-torch*.json")
    (row,) = json.loads(path.read_text())["rows"]
    assert row["amp"] == "off" and row["iters"] == 50 and row["batch"][:2] == [2, 3]
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and row["compile_s"] > 0
    assert "| off |" in path.with_suffix(".md").read_text()
