"""What each head of the probe configs can see, measured as gradients; the split accuracy counted right."""
import os

import numpy as np
import pytest
import torch
from helpers import ROOT
from torch import nn

from segattn.analysis.probe import open_paths, out_of_reach, reach_accuracy, receptive_field
from segattn.configure import load_tool_config
from segattn.data.context_probe import CELL, ELSEWHERE, GAP, ROW_COLUMN, generate, key_buckets, render
from segattn.models import build_model


REACH = 104  # px: at least the FCN's support, which bounds the band one criss-cross loop sees too (measured below)


def _probe_model(name):
    cfg = load_tool_config(os.path.join(ROOT, "configs", "probe", f"{name}.yaml"))
    torch.manual_seed(0)
    return build_model(cfg), cfg


def test_the_key_lies_beyond_what_the_fcn_sees_for_most_object_pixels():
    """The FCN's exact support is about 100 px; the probe keeps 80 px (GAP cells) between an object and its key,
    beyond which the FCN's gradient is almost nothing, and most object pixels are beyond the support itself."""
    model, _ = _probe_model("fcn")
    measured = receptive_field(model, radius=GAP * CELL)
    support = max(measured["support"])
    assert GAP * CELL < support <= REACH
    assert measured["beyond"] < 0.005
    counts = np.zeros((2, 2), int)
    for i in range(60):
        _, label, key_box = render([9, i], 1)
        far = out_of_reach(label, key_box, support)
        counts += [far["objects"], far["elsewhere"]]
    assert counts[0, 0] / counts[0, 1] > 0.8  # object pixels the FCN cannot see the key from, exactly
    assert counts[1, 0] / counts[1, 1] > 0.6  # "elsewhere" pixels off the band one criss-cross loop sees


def _sees_the_key(model, image, key_box, pixel):
    """Whether the logits at ``pixel`` depend on any pixel of the key (a non-zero gradient there)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].double().div(255).requires_grad_()
    out = model(x)["main"]
    grad, = torch.autograd.grad(out[0, :, pixel[0], pixel[1]].sum(), x)
    t, l, b, r = key_box
    return bool(grad[0, :, t:b, l:r].abs().sum() > 0)


@pytest.mark.parametrize("name, row_column, elsewhere", [
    ("fcn", False, False), ("ccnet_r1", True, False), ("ccnet", True, True), ("ccnet_r3", True, True),
    ("nonlocal", True, True), ("danet", True, True)])
def test_which_object_pixels_a_head_can_see_the_key_from(name, row_column, elsewhere):
    """FCN sees no key; one criss-cross loop sees it from the key's rows and columns only; two loops, Non-local
    and DANet from everywhere. Gradients of the untrained model, its zero-initialised gates opened."""
    model, _ = _probe_model(name)
    model = open_paths(model.eval().double())
    reach = REACH
    for seed in range(40):
        image, label, key_box = render([5, seed], 1)
        buckets = key_buckets(label, key_box)
        t, l, b, r = key_box
        ys, xs = np.mgrid[0:label.shape[0], 0:label.shape[1]]
        dy = np.maximum(0, np.maximum(t - ys, ys - (b - 1)))
        dx = np.maximum(0, np.maximum(l - xs, xs - (r - 1)))
        # row/column pixels beyond the FCN's reach; elsewhere pixels beyond the band of the key's rows and columns
        chosen = {ROW_COLUMN: (buckets == ROW_COLUMN) & (np.maximum(dy, dx) > reach),
                  ELSEWHERE: (buckets == ELSEWHERE) & (np.minimum(dy, dx) > reach)}
        if all(m.any() for m in chosen.values()):
            break
    for bucket, expected in ((ROW_COLUMN, row_column), (ELSEWHERE, elsewhere)):
        ys, xs = np.nonzero(chosen[bucket])
        for k in (0, len(ys) // 2, len(ys) - 1):
            assert _sees_the_key(model, image, key_box, (ys[k], xs[k])) == expected, (bucket, ys[k], xs[k])


class _Constant(nn.Module):
    """Predicts class 1 everywhere."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 5, *x.shape[-2:])
        logits[:, 1] = 1
        return {"main": logits}


def test_split_accuracy_counts_object_pixels_by_where_the_key_lies(tmp_path):
    root = generate(str(tmp_path / "probe"), num_train=2, num_val=8, progress=False)
    _, cfg = _probe_model("fcn")
    cfg.data.root, cfg.data.demo = root, False
    result = reach_accuracy(_Constant(), cfg)
    expected = {ROW_COLUMN: [0, 0], ELSEWHERE: [0, 0]}
    for i in range(8):
        _, label, key_box = render([0, 1, i], 1 + i % 4)
        buckets = key_buckets(label, key_box)
        for b in expected:
            expected[b][0] += int(((buckets == b) & (label == 1)).sum())
            expected[b][1] += int((buckets == b).sum())
    assert result["pixels"] == {"row_column": expected[ROW_COLUMN][1], "elsewhere": expected[ELSEWHERE][1]}
    assert result["row_column"] == pytest.approx(expected[ROW_COLUMN][0] / expected[ROW_COLUMN][1])
    assert result["elsewhere"] == pytest.approx(expected[ELSEWHERE][0] / expected[ELSEWHERE][1])
    assert 0 < result["row_column"] < 1 and result["images"] == 8


def test_probe_checkpoints_open_in_visualize_attention_and_the_explorer(tmp_path):
    """A CCNet probe checkpoint, as tools/train.py writes it, in the two map tools (config from the checkpoint)."""
    from helpers import run_tool

    from segattn.analysis.explorer import SCALE_HEIGHT, Explorer
    from segattn.configure import load_tool_config
    from segattn.data import dataset_class_names, dataset_palette
    from segattn.data.io import read_image
    from segattn.engine.predictor import load_model

    root = generate(str(tmp_path / "probe"), num_train=4, num_val=2, progress=False)
    run_tool("train.py", os.path.join(ROOT, "configs", "probe", "ccnet.yaml"), "--no-progress", f"data.root={root}",
             "data.demo=false", f"train.out_dir={tmp_path}", f"train.log_dir={tmp_path / 'runs'}", "train.max_iters=2",
             "train.val_interval=2", "train.checkpoint_interval=2")
    ckpt = tmp_path / "probe_ccnet" / "best.pth"
    image_path = os.path.join(root, "images", "val", "probe_00000.png")
    _, label, key_box = render([0, 1, 0], 1)
    y, x = (int(v[0]) for v in np.nonzero(key_buckets(label, key_box) > 0))
    out = run_tool("visualize_attention.py", "--checkpoint", ckpt, "--image", image_path, "--query", f"{y},{x}",
                   "--output", tmp_path / "maps.png").stdout
    assert "wrote" in out and (tmp_path / "maps.png").stat().st_size > 10_000
    cfg = load_tool_config(str(tmp_path / "probe_ccnet" / "config.yaml"))
    model, _ = load_model(cfg, str(ckpt), torch.device("cpu"))
    explorer = Explorer(model, cfg, torch.device("cpu"), dataset_class_names(cfg.data), dataset_palette(cfg.data), 1024)
    opened = explorer.open(read_image(image_path))
    pictures, _, where = explorer.click(opened, y, x, opacity=1.0)
    assert set(pictures) == {"cca_loop1", "cca_effective"} and f"pixel (y={y}, x={x})" in where
    assert all(p.shape == (256 + SCALE_HEIGHT, 256, 3) for p in pictures.values())  # the map, its colour scale


def test_pair_accuracy_counts_the_object_pixels_of_the_two_key_probe(tmp_path):
    """A model that says class 1 everywhere is right on the object pixels labelled 1, the keys' own pixels and the
    background left out."""
    from segattn.analysis.probe import pair_accuracy
    from segattn.data.context_probe_pairs import generate as generate_pairs, object_mask, pair_of
    from segattn.data.context_probe_pairs import render as render_pair

    root = generate_pairs(str(tmp_path / "pairs"), num_train=2, num_val=6, progress=False)
    _, cfg = _probe_model("fcn")
    cfg.data.root, cfg.data.demo, cfg.data.dataset = root, False, "context_probe_pairs"
    result = pair_accuracy(_Constant(), cfg)
    right = total = 0
    for i in range(6):
        _, label, keys = render_pair([0, 1, i], pair_of(i))
        scored = object_mask(label, keys)
        right, total = right + int((label[scored] == 1).sum()), total + int(scored.sum())
    assert result["pixels"] == total and result["images"] == 6
    assert result["objects"] == pytest.approx(right / total) and 0 < result["objects"] < 1
