"""ONNX export of every head, run in ONNX Runtime and OpenVINO, against the PyTorch inference path."""
import glob
import os
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("onnx", reason='ONNX export is optional: pip install -e ".[deploy]"')
pytest.importorskip("onnxruntime", reason='ONNX Runtime is optional: pip install -e ".[deploy]"')
pytest.importorskip("openvino", reason='OpenVINO is optional: pip install -e ".[deploy]"')

from helpers import assert_labels_are_argmax, export_model, run_tool, tiny_config  # noqa: E402
from segattn.data.io import read_image, read_mask  # noqa: E402
from segattn.data.transforms import normalize_image  # noqa: E402
from segattn.deploy.export import PORTABLE_OPERATORS, allowed_operators, export_onnx, graph_operators  # noqa: E402
from segattn.deploy.runtimes import open_runtime  # noqa: E402
from segattn.engine.inference import scale_logits  # noqa: E402
from segattn.errors import ConfigError  # noqa: E402
from segattn.models import ATTENTION, HEADS as HEADS_REGISTRY, build_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADS = HEADS_REGISTRY.names()  # every registered head, the toy of tests/toys.py included


def val_images(demo_root):
    return sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))


@pytest.mark.parametrize("head", HEADS)
def test_exported_head_equals_pytorch_in_both_runtimes(head, demo_root, tmp_path):
    cfg, model = export_model(head, demo_root, tmp_path)
    path = str(tmp_path / f"{head}.onnx")
    meta = export_onnx(model, cfg, path, 64, 96, dynamic=True)  # traced at 64x96, run at the demo's size
    assert meta["segattn.input"] == "dynamic" and meta["segattn.num_classes"] == "19"
    ops, allowed = graph_operators(path), allowed_operators(HEADS_REGISTRY[head])
    assert ops <= allowed, ops - allowed
    assert "Einsum" not in ops and "EyeLike" not in ops
    runtimes = [open_runtime("onnxruntime", path), open_runtime("openvino", path)]
    agree, pixels = {r.backend: 0 for r in runtimes}, 0
    for image_path in val_images(demo_root):
        image = read_image(image_path)
        expected = scale_logits(model, normalize_image(image)[None], 0.5)[0].numpy()
        pixels += expected[0].size
        for runtime in runtimes:
            got = runtime.predict_image(image)
            assert got.shape == expected.shape
            assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4, runtime.backend
            agree[runtime.backend] += int((got.argmax(0) == expected.argmax(0)).sum())
            assert_labels_are_argmax(runtime.predict_labels(image), got)
    assert all(n / pixels >= 0.9999 for n in agree.values()), (agree, pixels)


def test_an_export_without_the_labels_output_still_gives_labels(demo_root, tmp_path):
    """Files exported with logits only (before the graph took its own argmax) run as they did: the runtimes take
    the argmax of the logits."""
    import onnx

    cfg, model = export_model("fcn", demo_root, tmp_path)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, cfg, path, 64, 96, dynamic=True)
    graph = onnx.load(path)
    labels = [o for o in graph.graph.output if o.name == "labels"]
    assert len(labels) == 1 and labels[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    graph.graph.output.remove(labels[0])
    onnx.save(graph, str(tmp_path / "old.onnx"))
    image = np.random.default_rng(0).integers(0, 256, (75, 131, 3), dtype=np.uint8)
    for backend in ("onnxruntime", "openvino"):
        new, old = open_runtime(backend, path), open_runtime(backend, str(tmp_path / "old.onnx"))
        assert new.outputs == ("logits", "labels") and old.outputs == ("logits",)
        logits = old.predict_image(image)
        assert_labels_are_argmax(old.predict_labels(image), logits)
        assert_labels_are_argmax(new.predict_labels(image), logits)


def test_openvino_runtimes_closed_in_opening_order_leave_signals_handled(demo_root, tmp_path):
    """Two OpenVINO runtimes dropped in the order they were opened, then a signal with a Python handler (as a
    loader worker's exit or Ctrl-C): handled. With a Core each, the process died of a segmentation fault there,
    printing nothing (its alternate signal stack left on the first plugin's freed memory)."""
    import subprocess

    cfg, model = export_model("fcn", demo_root, tmp_path)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, cfg, path, 64, 96)
    code = ("import faulthandler, gc, os, signal; faulthandler.enable()\n"
            "from segattn.deploy.runtimes import open_runtime\n"
            f"first, second = open_runtime('openvino', {path!r}), open_runtime('openvino', {path!r})\n"
            "del first; gc.collect(); del second; gc.collect()\n"
            "signal.signal(signal.SIGUSR1, lambda *_: print('handled', flush=True))\n"
            "os.kill(os.getpid(), signal.SIGUSR1)\n"
            "print('alive', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["handled", "alive"], (proc.returncode, proc.stderr[-2000:])


def test_labels_of_another_size_than_the_image_come_from_the_logits(demo_root, tmp_path):
    """tools/eval.py with a label of another size than its image: the runtime's logits resized there, as the
    checkpoint's path does, not its labels output (made at the image's size)."""
    from segattn.engine.predictor import class_probabilities, predict_labels

    cfg, model = export_model("fcn", demo_root, tmp_path)
    path = str(tmp_path / "m.onnx")
    export_onnx(model, cfg, path, 64, 96, dynamic=True)
    runtime = open_runtime("openvino", path)
    image = np.random.default_rng(0).integers(0, 256, (75, 131, 3), dtype=np.uint8)
    small = predict_labels(runtime, cfg, image, "cpu", (40, 60))
    assert small.shape == (40, 60)
    assert (small == class_probabilities(runtime, cfg, image, "cpu", (40, 60)).argmax(0).numpy()).all()
    assert (predict_labels(runtime, cfg, image, "cpu", (75, 131)) == runtime.predict_labels(image)).all()


@pytest.mark.parametrize("block", ATTENTION.names())
def test_attention_blocks_export(block, demo_root, tmp_path):
    """Every registered attention block, in front of the head (model.context_block) and in the encoder's last
    stage's blocks, exports and matches PyTorch (its operators the portable set and its own ``onnx_operators``), or
    is refused in one line where ONNX cannot express it (its ``onnx_refusal``: the deformable convolution)."""
    cfg = tiny_config(demo_root, tmp_path, head="fcn")
    cfg.model.context_block = block
    cfg.model.encoder.block_attention = block
    cfg.model.encoder.attention_stages = [4]
    cfg.eval.scales = [0.5]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = str(tmp_path / "m.onnx")
    cls = ATTENTION[block]
    if getattr(cls, "onnx_refusal", None):
        with pytest.raises(ConfigError, match=r"export: [\w.]+ \(DeformableBlock\) has no ONNX form") as err:
            export_onnx(model, cfg, path, 64, 96, dynamic=True)
        assert "\n" not in str(err.value) and not os.listdir(tmp_path)
        return
    export_onnx(model, cfg, path, 64, 96, dynamic=True)
    assert graph_operators(path) <= PORTABLE_OPERATORS | getattr(cls, "onnx_operators", frozenset())
    image = np.random.default_rng(0).integers(0, 256, (75, 131, 3), dtype=np.uint8)
    expected = scale_logits(model, normalize_image(image)[None], cfg.eval.scales[0])[0].numpy()
    got = open_runtime("onnxruntime", path).predict_image(image)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4


def test_recurrence_three_and_batch_and_odd_sizes(demo_root, tmp_path):
    cfg, model = export_model("ccnet", demo_root, tmp_path, recurrence=3)
    path = str(tmp_path / "cc3.onnx")
    export_onnx(model, cfg, path, 64, 96, dynamic=True)
    runtime = open_runtime("onnxruntime", path)
    images = np.random.default_rng(0).integers(0, 256, (2, 37, 61, 3), dtype=np.uint8)
    got = runtime._run(images)
    x = torch.stack([normalize_image(im) for im in images])
    expected = scale_logits(model, x, 0.5).numpy()
    assert got.shape == (2, 19, 37, 61)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4




@pytest.fixture(scope="module")
def exported(demo_root, tmp_path_factory):
    """A CCNet checkpoint, exported static (the demo's 256 x 512) and dynamic, through the tools."""
    tmp = tmp_path_factory.mktemp("export")
    cfg, model = export_model("ccnet", demo_root, tmp)
    cfg.train.experiment = "x"
    OmegaConf.save(cfg, tmp / "cfg.yaml")
    torch.save({"model": model.state_dict()}, tmp / "ccnet.pth")
    out = run_tool("export.py", tmp / "cfg.yaml", "--checkpoint", tmp / "ccnet.pth", "--output", tmp / "static.onnx",
               "--height", 256, "--width", 512).stdout
    assert "onnx.checker passed" in out and "input 256x512" in out
    run_tool("export.py", tmp / "cfg.yaml", "--checkpoint", tmp / "ccnet.pth", "--output", tmp / "dynamic.onnx",
         "--dynamic")
    return tmp


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_infer_tool_writes_the_files_pytorch_writes(backend, exported, demo_root, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for path in val_images(demo_root):
        os.symlink(path, images / os.path.basename(path))
    cfg = exported / "cfg.yaml"
    run_tool("infer.py", cfg, "--checkpoint", exported / "ccnet.pth", "--input", images, "--output", tmp_path / "torch",
         "--no-progress")
    out = run_tool("infer.py", cfg, "--backend", backend, "--model", exported / "static.onnx", "--input", images,
               "--output", tmp_path / backend, "--no-progress").stdout
    assert "3 images segmented" in out
    assert sorted(os.listdir(tmp_path / backend)) == sorted(os.listdir(tmp_path / "torch"))
    same = total = 0
    for name in os.listdir(tmp_path / "torch"):
        if name.endswith("_pred.png"):
            a, b = read_mask(str(tmp_path / "torch" / name)), read_mask(str(tmp_path / backend / name))
            same, total = same + int((a == b).sum()), total + a.size
    assert same / total >= 0.9999


def test_bad_input_is_one_line(exported, demo_root, tmp_path):
    cfg = exported / "cfg.yaml"
    small = tmp_path / "small"
    small.mkdir()
    import cv2

    cv2.imwrite(str(small / "a.png"), np.zeros((40, 60, 3), np.uint8))
    proc = run_tool("infer.py", cfg, "--backend", "onnxruntime", "--model", exported / "static.onnx", "--input", small,
                "--output", tmp_path / "o", "--no-progress", check=False)
    assert proc.returncode == 1 and "takes 256x512 images only" in proc.stdout and "this one is 40x60" in proc.stdout
    proc = run_tool("infer.py", cfg, "--backend", "onnxruntime", "--model", exported / "dynamic.onnx", "--input", small,
                "--output", tmp_path / "o2", "--no-progress")  # the dynamic model takes it
    proc = run_tool("infer.py", cfg, "model.num_classes=5", "data.dataset=folder", "data.class_names=[a,b,c,d,e]",
                "--backend", "openvino", "--model", exported / "dynamic.onnx", "--input", small, "--output",
                tmp_path / "o3", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("export it from a checkpoint of this config")
    # ONNX Runtime leaves a dynamic graph's class count open in its output shape: the file's record decides
    proc = run_tool("infer.py", cfg, "model.num_classes=5", "data.dataset=folder", "data.class_names=[a,b,c,d,e]",
                "--backend", "onnxruntime", "--model", exported / "dynamic.onnx", "--input", small, "--output",
                tmp_path / "o4", check=False)
    assert proc.returncode == 2 and "predicts 19 classes but" in proc.stderr and not (tmp_path / "o4").exists()
    proc = run_tool("export.py", cfg, "model.head.type=danet", "--checkpoint", exported / "ccnet.pth", "--output",
                tmp_path / "x.onnx", check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "does not fit" in proc.stderr
    proc = run_tool("export.py", cfg, "model.head.recurence=2", "--checkpoint", exported / "ccnet.pth", "--output",
                tmp_path / "x.onnx", check=False)
    assert proc.returncode == 2 and "recurence" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_tool("export.py", cfg, "data.test_resize=[700,350]", "--checkpoint", exported / "ccnet.pth", "--output",
                    tmp_path / "x.onnx", check=False)
    assert proc.returncode == 2 and "data.test_resize=null" in proc.stderr
    assert not (tmp_path / "x.onnx").exists()
    cut = tmp_path / "cut.onnx"  # a truncated export: one line from either runtime, no InvalidProtobuf traceback
    data = (exported / "dynamic.onnx").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    for backend in ("onnxruntime", "openvino"):
        proc = run_tool("infer.py", cfg, "--backend", backend, "--model", cut, "--input", small, "--output",
                        tmp_path / "o5", check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "cut.onnx: not a readable ONNX model" in proc.stderr


def test_missing_runtime_package_names_the_install(monkeypatch, tmp_path):
    from segattn.errors import MissingPackageError

    (tmp_path / "m.onnx").write_bytes(b"")
    for package in ("onnxruntime", "openvino"):
        monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
        with pytest.raises(MissingPackageError, match=rf"the {package} package is not installed; pip install"):
            open_runtime(package, str(tmp_path / "m.onnx"))


def test_one_pixel_images_segment_in_a_dynamic_export(demo_root, tmp_path):
    """At eval scale 0.3 the graph's floor(side x 0.3) is 0 for a side below 4: ONNX Runtime's Resize failed on
    such images; each pixel is now repeated until the side survives, and the logits averaged back."""
    from segattn.deploy.runtimes import open_runtime

    cfg = tiny_config(demo_root, tmp_path)  # eval.scales [0.3]
    model = build_model(cfg).eval()
    path = tmp_path / "d.onnx"
    export_onnx(model, cfg, str(path), 64, 96, dynamic=True)
    runtime = open_runtime("onnxruntime", str(path))
    for shape in ((1, 1), (1, 5), (3, 7), (40, 2)):
        image = np.random.randint(0, 255, (*shape, 3), np.uint8)
        logits = runtime.predict_image(image)
        assert logits.shape == (19, *shape) and np.isfinite(logits).all()
        assert_labels_are_argmax(runtime.predict_labels(image), logits)
