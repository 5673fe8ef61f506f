"""benchmarks/runtimes.py: PyTorch, ONNX Runtime and OpenVINO give the same logits before they are timed."""
import os

import pytest
from helpers import ROOT

pytest.importorskip("onnxruntime", reason='pip install -e ".[deploy]"')
pytest.importorskip("openvino", reason='pip install -e ".[deploy]"')

from runtimes import compare_runtimes  # noqa: E402


def test_deploy_benchmark_compares_outputs_before_timing():
    ms = compare_runtimes(os.path.join(ROOT, "configs", "demo", "danet.yaml"), 64, 128, repeats=1, warmup=0)
    assert set(ms) == {"pytorch", "onnxruntime", "openvino"} and min(ms.values()) > 0
