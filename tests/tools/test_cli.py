"""The three tools end to end, as a user runs them, on temporary folders."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers import tiny_config
from segattn.data.io import read_mask, write_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tool(name, *args, check=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_config(demo_root, tmp, max_iters=2, val_interval=2)
    path = tmp / "cfg.yaml"
    OmegaConf.save(cfg, path)
    proc = tool("train.py", path)
    assert "mIoU" in proc.stdout
    return path, tmp / "t" / "best.pth"


def test_train_override_typo_is_one_line(trained):
    cfg, _ = trained
    proc = tool("train.py", cfg, "train.max_iter=5", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: command line: unknown key 'train.max_iter'; did you mean 'train.max_iters'?"


def test_eval_prints_table_writes_json_and_predictions(trained, demo_root, tmp_path):
    cfg, ckpt = trained
    proc = tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", tmp_path / "pred", "--mode", "slide",
                "--flip")
    assert "| road |" in proc.stdout and "mIoU" in proc.stdout
    metrics = json.loads((ckpt.parent / "eval_val.json").read_text())
    assert set(metrics["per_class"]) >= {"road", "sky", "bicycle"} and 0 <= metrics["mIoU"] <= 1
    names = sorted(os.listdir(tmp_path / "pred"))
    assert len(names) == 6 and names[0].endswith("_leftImg8bit.png") and names[1].endswith("_color.png")
    ids = read_mask(str(tmp_path / "pred" / names[0]))
    assert set(np.unique(ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def test_eval_bad_checkpoint_is_one_line(trained, tmp_path):
    cfg, _ = trained
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    proc = tool("eval.py", cfg, "--checkpoint", bad, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}: not a readable checkpoint")
    proc = tool("eval.py", cfg, "--checkpoint", tmp_path / "absent.pth", check=False)
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr


def test_infer_folder_with_odd_images_and_a_corrupt_one(trained, tmp_path):
    cfg, ckpt = trained
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_png(str(src / "rgb.png"), np.random.randint(0, 255, (37, 53, 3), np.uint8))
    write_png(str(src / "gray.png"), np.random.randint(0, 255, (40, 30), np.uint8), rgb=False)
    import cv2

    cv2.imwrite(str(src / "rgba.png"), np.random.randint(0, 255, (20, 25, 4), np.uint8))
    cv2.imwrite(str(src / "photo.jpg"), np.random.randint(0, 255, (33, 44, 3), np.uint8))
    write_png(str(src / "sub" / "deep.png"), np.random.randint(0, 255, (16, 16, 3), np.uint8))
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "out"
    proc = tool("infer.py", cfg, "--checkpoint", ckpt, "--input", src, "--output", out, "--recursive", check=False)
    assert proc.returncode == 1
    assert "5 images segmented" in proc.stdout and "1 failed" in proc.stdout and "broken.png" in proc.stdout
    for stem, shape in (("rgb", (37, 53)), ("gray", (40, 30)), ("rgba", (20, 25)), ("photo", (33, 44)),
                        ("sub/deep", (16, 16))):
        pred = read_mask(str(out / f"{stem}_pred.png"))
        assert pred.shape == shape and pred.max() < 19
        assert (out / f"{stem}_color.png").is_file() and (out / f"{stem}_overlay.jpg").is_file()


def test_check_dataset_exit_status(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path)
    path = tmp_path / "cfg.yaml"
    OmegaConf.save(cfg, path)
    proc = tool("check_dataset.py", path)
    assert "dataset OK" in proc.stdout and "split 'train': 6 pairs checked, no problems" in proc.stdout
    cfg.data.root = str(tmp_path / "missing")
    OmegaConf.save(cfg, path)
    proc = tool("check_dataset.py", path, check=False)
    assert proc.returncode == 1 and "empty split" in proc.stdout


def test_visualize_attention_writes_a_panel(trained, demo_root, tmp_path):
    cfg, ckpt = trained
    import glob

    image = sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0]
    out = tmp_path / "att.png"
    proc = tool("visualize_attention.py", cfg, "--checkpoint", ckpt, "--image", image, "--query", "60,100",
                "--query", "200,400", "--output", out)
    assert "2 queries" in proc.stdout
    import cv2

    panel = cv2.imread(str(out))
    assert panel is not None and panel.shape[0] > 300 and panel.shape[1] > 600


KILLER = """
import os, signal, sys
sys.argv = [sys.argv[0], *sys.argv[2:]]
from segattn.engine.trainer import Trainer
kill_at, save = int(os.environ["KILL_AT"]), Trainer.save
def save_then_die(self, name):
    save(self, name)
    if self.iteration == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as a power cut or the OOM killer
Trainer.save = save_then_die
sys.path.insert(0, {tools!r})
import runpy
runpy.run_path({train!r}, run_name="__main__")
"""


@pytest.mark.parametrize("workers", [0, 1])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(demo_root, tmp_path, workers):
    """Killed after iteration 4 and again after 7 (3 iterations an epoch), resumed each time: bitwise equal."""
    import torch

    from segattn.engine.checkpoint import load_checkpoint

    def config(out):
        cfg = tiny_config(demo_root, out, max_iters=8, checkpoint_interval=1, val_interval=8, threads=1)
        cfg.data.workers = workers
        path = out / "cfg.yaml"
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, path)
        return path

    tool("train.py", config(tmp_path / "straight"))
    killed = config(tmp_path / "killed")
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(tools=os.path.join(ROOT, "tools"), train=os.path.join(ROOT, "tools", "train.py")))
    last = tmp_path / "killed" / "t" / "last.pth"
    for kill_at, resume in ((4, []), (7, ["--resume"])):
        proc = subprocess.run([sys.executable, str(script), "train.py", str(killed), *resume, "--no-progress"],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, "KILL_AT": str(kill_at)},
                              timeout=600)
        assert proc.returncode == -9, proc.stderr[-2000:]
        assert load_checkpoint(str(last))["iteration"] == kill_at
    tool("train.py", killed, "--resume")
    a = load_checkpoint(str(tmp_path / "straight" / "t" / "last.pth"))
    b = load_checkpoint(str(last))
    assert a["iteration"] == b["iteration"] == 8 and a["metrics"]["mIoU"] == b["metrics"]["mIoU"]
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0, msg=key)
    for i, state in a["optimizer"]["state"].items():
        torch.testing.assert_close(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"],
                                   rtol=0, atol=0)


def test_out_of_range_values_are_one_line_and_debug_shows_the_traceback(trained):
    cfg, _ = trained
    proc = tool("train.py", cfg, "train.lr=-1", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("train.lr must be > 0, got -1.0")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = tool("train.py", cfg, "train.lr=-1", "--debug", check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
