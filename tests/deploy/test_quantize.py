"""int8 export (tools/export.py --int8) and evaluating an export (tools/eval.py --backend), run as a user runs them."""
import glob
import json
import os
from collections import Counter

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("onnx", reason='ONNX export is optional: pip install -e ".[deploy]"')
pytest.importorskip("onnxruntime", reason='ONNX Runtime is optional: pip install -e ".[deploy]"')
pytest.importorskip("openvino", reason='OpenVINO is optional: pip install -e ".[deploy]"')

import onnx  # noqa: E402

from helpers import assert_labels_are_argmax, export_model, run_tool  # noqa: E402
from segattn.data.io import read_image  # noqa: E402
from segattn.deploy.runtimes import open_runtime  # noqa: E402
from segattn.models import HEADS  # noqa: E402


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory):
    """A tiny CCNet checkpoint (attention gates open), its config, and its float and int8 exports."""
    tmp = tmp_path_factory.mktemp("int8")
    cfg, model = export_model("ccnet", demo_root, tmp)
    OmegaConf.save(cfg, tmp / "cfg.yaml")
    torch.save({"model": model.state_dict()}, tmp / "ccnet.pth")
    common = [tmp / "cfg.yaml", "--checkpoint", tmp / "ccnet.pth", "--dynamic"]
    run_tool("export.py", *common, "--output", tmp / "float.onnx")
    out = run_tool("export.py", *common, "--output", tmp / "int8.onnx", "--int8", "--calibration-images", 3).stdout
    return tmp, out


def val_images(demo_root) -> list:
    return sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))


def producers(graph) -> dict:
    return {name: node for node in graph.node for name in node.output}


def test_int8_export_is_quantized_where_it_should_be_and_float_where_it_must(trained):
    tmp, out = trained
    assert "int8 (calibrated on 3 images of train, float: Softmax)" in out and "onnx.checker passed" in out
    model = onnx.load(tmp / "int8.onnx")
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["QuantizeLinear"] >= 10 and ops["DequantizeLinear"] >= ops["QuantizeLinear"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["segattn.precision"] == "int8" and meta["segattn.calibration_images"] == "3"
    assert meta["segattn.head"] == "ccnet" and meta["segattn.input"] == "dynamic"  # the float export's, kept
    made_by = producers(model.graph)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(made_by[n.input[1]].op_type == "DequantizeLinear" for n in convs)  # int8 weights
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert softmaxes
    for softmax in softmaxes:  # its energies float back to the MatMuls that made them, its output read in float
        stack, upstream = [made_by[softmax.input[0]]], []
        while stack:
            node = stack.pop()
            upstream.append(node.op_type)
            if node.op_type not in ("MatMul", "Conv"):
                stack += [made_by[i] for i in node.input if i in made_by]
        assert "MatMul" in upstream and "DequantizeLinear" not in upstream, upstream
        readers = [n for n in model.graph.node if softmax.output[0] in n.input]
        assert readers and all(n.op_type != "QuantizeLinear" for n in readers)
    final = made_by["logits"]
    assert final.op_type == "Resize" and made_by[final.input[0]].op_type != "DequantizeLinear"
    tail, node = [], made_by["labels"]  # the labels: the float export's argmax of the float logits, channels-last
    while True:
        tail.append((node.op_type, {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}))
        if node.input[0] == "logits":
            break
        node = made_by[node.input[0]]
    assert tail == [("Cast", {"to": onnx.TensorProto.UINT8}),
                    ("ArgMax", {"axis": -1, "keepdims": 0, "select_last_index": 0}),
                    ("Transpose", {"perm": [0, 2, 3, 1]})], tail
    first = next(n for n in model.graph.node if "image" in n.input)
    assert first.op_type != "QuantizeLinear"  # the uint8 image is normalised in float


def test_int8_logits_follow_the_float_export_in_both_runtimes(trained, demo_root):
    tmp, _ = trained
    paths = val_images(demo_root)
    reference = open_runtime("onnxruntime", str(tmp / "float.onnx"))
    for backend in ("onnxruntime", "openvino"):
        quantized = open_runtime(backend, str(tmp / "int8.onnx"))
        for path in paths:
            image = read_image(path)
            want, got = reference.predict_image(image), quantized.predict_image(image)
            assert got.shape == want.shape
            # 8-bit ranges over a random net: close, not equal (a broken scale or zero point is far off)
            assert np.abs(got - want).mean() <= 0.1 * np.abs(want).mean(), backend
            assert np.corrcoef(got.ravel(), want.ravel())[0, 1] >= 0.98, backend


def test_infer_and_eval_run_the_int8_export(trained, demo_root, tmp_path):
    tmp, _ = trained
    folder = tmp_path / "images"
    folder.mkdir()
    for path in val_images(demo_root):
        os.symlink(path, folder / os.path.basename(path))
    for backend in ("onnxruntime", "openvino"):
        out = run_tool("infer.py", tmp / "cfg.yaml", "--backend", backend, "--model", tmp / "int8.onnx", "--input",
                       folder, "--output", tmp_path / backend, "--no-progress").stdout
        assert "3 images segmented" in out
        assert len(list((tmp_path / backend).glob("*_pred.png"))) == 3
    out = run_tool("eval.py", tmp / "cfg.yaml", "--backend", "openvino", "--model", tmp / "int8.onnx",
                   "--no-progress").stdout
    assert "mIoU" in out
    result = json.loads((tmp / "eval_val_int8_openvino.json").read_text())
    assert result["settings"]["segattn.precision"] == "int8" and result["settings"]["backend"] == "openvino"
    assert result["images"] == 3 and 0 <= result["mIoU"] <= 1


def test_eval_of_the_float_export_equals_eval_of_the_checkpoint(trained):
    """The same numbers from tools/eval.py on the checkpoint (PyTorch, the config's whole-image pass at scale 0.5)
    and on its float export in either runtime: the confusion matrices differ in almost no pixel."""
    tmp, _ = trained
    run_tool("eval.py", tmp / "cfg.yaml", "--checkpoint", tmp / "ccnet.pth", "--no-progress")
    torch_cm = np.array(json.loads((tmp / "confusion_val_ccnet_whole_s0.5.json").read_text())["counts"])
    for backend in ("onnxruntime", "openvino"):
        run_tool("eval.py", tmp / "cfg.yaml", "--backend", backend, "--model", tmp / "float.onnx", "--no-progress")
        cm = np.array(json.loads((tmp / f"confusion_val_float_{backend}.json").read_text())["counts"])
        assert cm.sum() == torch_cm.sum() > 0
        assert np.abs(cm - torch_cm).sum() / 2 <= 1e-4 * cm.sum(), backend
        result = json.loads((tmp / f"eval_val_float_{backend}.json").read_text())
        assert result["settings"]["model"] == str(tmp / "float.onnx")


def test_bad_int8_and_backend_options_are_one_line(trained, tmp_path):
    tmp, _ = trained
    base = [tmp / "cfg.yaml", "--checkpoint", tmp / "ccnet.pth", "--output", tmp_path / "x.onnx", "--int8"]
    for extra, words in ((["--keep-float", "softmax"], "softmax is not an ONNX operator type"),
                         (["--calibration-images", 0], "--calibration-images 0: give at least 1")):
        proc = run_tool("export.py", *base, *extra, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, \
            proc.stderr
        assert not (tmp_path / "x.onnx").exists()
    proc = run_tool("eval.py", tmp / "cfg.yaml", "--backend", "onnxruntime", "--model", tmp / "int8.onnx", "--mode",
                    "slide", check=False)
    assert proc.returncode == 2 and "the export's own whole-image pass" in proc.stderr
    proc = run_tool("eval.py", tmp / "cfg.yaml", "--backend", "onnxruntime", check=False)
    assert proc.returncode == 2 and "needs --model MODEL.onnx" in proc.stderr


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_quantizes_and_runs_in_both_runtimes(head, demo_root, tmp_path):
    """Each registered head's int8 file runs in ONNX Runtime and OpenVINO (EMANet's 3-D bases MatMul, which
    ONNX Runtime's int8 MatMul refuses, stays float)."""
    from segattn.deploy.export import export_onnx
    from segattn.deploy.quantize import quantize_onnx

    cfg, model = export_model(head, demo_root, tmp_path)
    export_onnx(model, cfg, str(tmp_path / "float.onnx"), 64, 96)
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    quantize_onnx(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), [image])
    for backend in ("onnxruntime", "openvino"):
        runtime = open_runtime(backend, str(tmp_path / "int8.onnx"))
        logits = runtime.predict_image(image)
        assert logits.shape == (cfg.model.num_classes, 64, 96) and np.isfinite(logits).all()
        assert_labels_are_argmax(runtime.predict_labels(image), logits, agree=0.99)
    graph = onnx.load(tmp_path / "int8.onnx").graph
    weights = {i.name: len(i.dims) for i in graph.initializer}
    made_by = producers(graph)
    for node in graph.node:  # no MatMul reads a dequantized weight of more than two dimensions
        if node.op_type == "MatMul" and node.input[1] in made_by and made_by[node.input[1]].op_type == "DequantizeLinear":
            assert weights.get(made_by[node.input[1]].input[0], 2) <= 2, node.name
