"""benchmarks/mmseg_deploy.py: mmsegmentation's PyTorch eval beside every path of ours, on one small image."""
import json

import pytest

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")
pytest.importorskip("onnxruntime", reason='pip install -e ".[deploy]"')
pytest.importorskip("openvino", reason='pip install -e ".[deploy]"')

import mmseg_deploy  # noqa: E402


def test_every_path_timed_beside_mmseg(demo_root, tmp_path):
    assert mmseg_deploy.main(["--heads", "fcn", "--size", "33", "65", "--repeats", "1", "--warmup", "0",
                              "--calibration-images", "1", "--output", str(tmp_path), f"data.root={demo_root}",
                              "data.demo=false"]) == 0
    (path,) = tmp_path.glob("mmseg_deploy-cpu-torch*.json")
    (row,) = json.loads(path.read_text())["rows"]
    assert row["size"] == [33, 65]
    assert all(row[f"{p}_ms"] > 0 for p in mmseg_deploy.PATHS)
    text = path.with_suffix(".md").read_text()
    assert "| fcn R-50-D8 | mmsegmentation 1.2.2 (PyTorch eval) |" in text and "| 1.00 |" in text
    assert "| fcn R-50-D8 | segattn OpenVINO int8 |" in text
