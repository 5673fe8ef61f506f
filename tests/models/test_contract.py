"""The head contract holds: a head and a block written outside the package, joined through a config's ``imports:``
and nothing else, run through every tool and appear in every generated table.

The head has a map the same for every query (the ``context`` kind, as a global-context head's one softmax over the
positions), so the figure and the explorer must title it as its own kind, not as another head's.
"""
import glob
import os
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import ROOT, run_tool, tiny_config
from segattn.models.maps import MAP_KINDS

MODULE = "scratch_contract"
SOURCE = '''"""Scratch context head: one softmax over the positions pools a context vector added to every pixel."""
import torch
from torch import nn

from segattn.models.heads.base import DecodeHead
from segattn.models.layers import ConvNormReLU
from segattn.registry import ATTENTION, HEADS


@HEADS.register("scratch_context")
class ScratchContextHead(DecodeHead):
    title = "Scratch context"
    map_kinds = ("context",)
    onnx_operators = frozenset({"Flatten"})  # torch's flatten(1) exports as Flatten, outside the portable set

    def __init__(self, in_channels, channels, num_classes, temperature: float = 1.0, dropout=0.1,
                 norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.conv = ConvNormReLU(in_channels, channels, norm=norm)
        self.mask = nn.Conv2d(channels, 1, 1)
        self.temperature = temperature

    def weights(self, out):
        return torch.softmax(self.mask(out).flatten(1) / self.temperature, dim=-1)  # (B, HW)

    def forward(self, x):
        out = self.conv(x)
        context = torch.matmul(out.flatten(2), self.weights(out).unsqueeze(-1)).unsqueeze(-1)  # (B, C, 1, 1)
        return {"main": self.cls_seg(out + context)}

    def attention_maps(self, x):
        return {"context": self.weights(self.conv(x))}


@ATTENTION.register("scratch_gate")
class ScratchGate(nn.Module):
    """Scratch gate block: a sigmoid gate per pixel and channel."""

    def __init__(self, channels, bias: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
        nn.init.constant_(self.conv.bias, bias)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))
'''


@pytest.fixture(scope="module")
def scratch_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_code")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    return folder


@pytest.fixture
def scratch(scratch_dir, monkeypatch):
    """The folder on this process's path and on the tools' PYTHONPATH, as a user's own module would be."""
    monkeypatch.syspath_prepend(str(scratch_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(scratch_dir), os.environ.get("PYTHONPATH")])))
    return scratch_dir


def docs_tables():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import docs_tables
    finally:
        sys.path.pop(0)
    return docs_tables


def test_a_head_and_a_block_from_outside_the_package_go_through_every_tool(scratch, demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path, head={"type": "scratch_context", "temperature": 0.5}, max_iters=2,
                      val_interval=2)
    cfg.imports = [MODULE]
    cfg.model.context_block = {"type": "scratch_gate", "bias": 1.0}
    config = tmp_path / "scratch.yaml"
    OmegaConf.save(cfg, config)

    # trained and evaluated by the tools, the module found through imports: alone
    out = run_tool("train.py", config, "--no-progress").stdout
    best = tmp_path / "t" / "best.pth"
    assert best.is_file() and "mIoU" in out
    assert "mIoU" in run_tool("eval.py", config, "--checkpoint", best, "--no-progress").stdout

    # exported, and run in both runtimes, within the operators its head allows
    from segattn.configure import load_tool_config
    from segattn.data.io import read_image
    from segattn.data.transforms import normalize_image
    from segattn.deploy.export import allowed_operators, graph_operators
    from segattn.deploy.runtimes import open_runtime
    from segattn.engine.inference import scale_logits
    from segattn.engine.predictor import load_model
    from segattn.models import ATTENTION, HEADS

    onnx_path = tmp_path / "scratch.onnx"
    run_tool("export.py", config, "--checkpoint", best, "--output", onnx_path, "--dynamic")
    cfg = load_tool_config(str(config))  # in this process too, the module joins through the config's imports
    ops = graph_operators(str(onnx_path))
    assert "Flatten" in ops and ops <= allowed_operators(HEADS["scratch_context"])  # what it declared, no more
    model, _ = load_model(cfg, str(best), torch.device("cpu"))
    image = read_image(sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0])
    expected = scale_logits(model, normalize_image(image)[None], cfg.eval.scales[0])[0].numpy()
    for backend in ("onnxruntime", "openvino"):
        got = open_runtime(backend, str(onnx_path)).predict_image(image)
        assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4, backend

    # visualised: the figure of its one map per query
    panel = tmp_path / "panel.png"
    run_tool("visualize_attention.py", config, "--checkpoint", best, "--image",
             sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0],
             "--query", "40,60", "--query", "100,200", "--output", panel)
    assert panel.stat().st_size > 10_000

    # served by the explorer under its own kind's title, the same map for any click
    from segattn.analysis.explorer import TITLES, Explorer
    from segattn.data import dataset_class_names, dataset_palette

    explorer = Explorer(model, cfg, torch.device("cpu"), dataset_class_names(cfg.data), dataset_palette(cfg.data))
    opened = explorer.open(image)
    one, _, _ = explorer.click(opened, 10, 10, opacity=1.0)
    other, _, _ = explorer.click(opened, 200, 400, opacity=1.0)
    assert set(one) == {"context"} and TITLES["context"] == MAP_KINDS["context"].views["context"]
    ring = np.zeros(image.shape[:2], bool)  # the query's ring differs between the clicks; the map does not
    ring[:40, :40] = ring[170:230, 370:430] = True
    np.testing.assert_array_equal(one["context"][:ring.shape[0]][~ring], other["context"][:ring.shape[0]][~ring])
    np.testing.assert_array_equal(one["context"][ring.shape[0]:], other["context"][ring.shape[0]:])  # one scale
    gradio = pytest.importorskip("gradio")
    assert gradio
    from segattn.analysis.explorer_app import MAP_KEYS

    assert "context" in MAP_KEYS  # the page has a picture for it

    # benchmarked, as every registered head and block
    from segattn.analysis.benchmark import measure
    from segattn.analysis.cases import block_cases, head_cases

    case = next(c for c in head_cases(in_channels=32, height=9, width=11, channels=16) if c.name == "scratch_context")
    row = measure(case, repeats=1, warmup=0)
    assert row["params_m"] > 0 and row["gflops"] > 0 and row["act_mb"] > 0
    case = next(c for c in block_cases(channels=16, height=9, width=11) if c.name == "scratch_gate")
    assert measure(case, repeats=1, warmup=0)["params_m"] == pytest.approx((16 * 16 + 16) / 1e6)

    # in every generated table, with what its class says
    tables = docs_tables()
    assert "| `scratch_context` | Scratch context head: one softmax over the positions pools a context vector " \
           "added to every pixel | `temperature: 1.0` | `context` | — |" in tables.heads_table()
    assert "| `scratch_gate` | Scratch gate block: a sigmoid gate per pixel and channel | `bias: 0.0` |" \
           in tables.blocks_table()
    context_row = next(line for line in tables.map_kinds_table().splitlines() if line.startswith("| `context`"))
    assert "Scratch context" in context_row
    assert "Not yet run by `benchmarks/demo.py`: " in tables.results_table()
    assert "Scratch context (no demo config)" in tables.results_table().splitlines()[-1]
    assert ATTENTION["scratch_gate"] and HEADS["scratch_context"]


def test_generated_tables_in_the_tree_are_in_step():
    """README.md's results table, the docs' head, block and map-kind tables and the layout are what the registries
    (the shipped heads and blocks alone, in a fresh process), the configs and the results files say."""
    import subprocess

    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "docs_tables.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
