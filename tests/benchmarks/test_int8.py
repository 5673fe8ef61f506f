"""benchmarks/int8.py: every path a user has, timed, evaluated and compared with the float export."""
import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import ROOT

pytest.importorskip("onnxruntime", reason='pip install -e ".[deploy]"')
pytest.importorskip("openvino", reason='pip install -e ".[deploy]"')


def test_int8_benchmark_times_and_evaluates_every_path(demo_root, tmp_path):
    from segattn.configure import load_tool_config
    from segattn.models import build_model

    # data.demo=false: the session's small demo split as it is (a demo config would fill it up to the full demo)
    data = [f"data.root={demo_root}", "data.demo=false"]
    cfg = load_tool_config(os.path.join(ROOT, "configs", "demo", "fcn.yaml"), data)
    torch.manual_seed(0)
    (tmp_path / "ckpt" / "demo_fcn").mkdir(parents=True)
    torch.save({"model": build_model(cfg).state_dict()}, tmp_path / "ckpt" / "demo_fcn" / "best.pth")
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "int8.py"), "--heads", "fcn", "--checkpoints",
                           str(tmp_path / "ckpt"), "--repeats", "1", "--warmup", "0", "--calibration-images", "2",
                           "--output", str(tmp_path), *data], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training configs/demo" not in proc.stderr  # the checkpoint given was used
    (path,) = tmp_path.glob("int8-cpu-torch*.json")
    (row,) = json.loads(path.read_text())["rows"]
    paths = ("pytorch", "ort_fp32", "ort_int8", "ov_fp32", "ov_int8")
    assert all(row[f"{p}_ms"] > 0 and 0 <= row[f"{p}_miou"] <= 100 for p in paths)
    assert row["ort_fp32_same"] == 100 and row["pytorch_same"] >= 99.9 and row["ov_fp32_same"] >= 99.9
    assert abs(row["pytorch_miou"] - row["ort_fp32_miou"]) <= 0.1
    assert "| fcn | ONNX Runtime int8 |" in path.with_suffix(".md").read_text()
