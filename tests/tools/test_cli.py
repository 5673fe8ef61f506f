"""The three tools end to end, as a user runs them, on temporary folders."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers import run_tool, spatial_kernel, tiny_config
from segattn.data.io import read_mask, write_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tool(name, *args, check=True):
    return run_tool(name, *args, "--no-progress", check=check)


@pytest.fixture(scope="module")
def trained(demo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = tiny_config(demo_root, tmp, max_iters=2, val_interval=2)
    path = tmp / "cfg.yaml"
    OmegaConf.save(cfg, path)
    proc = tool("train.py", path)
    assert "mIoU" in proc.stdout
    # the closing summary: where the files went, the precision, what to run next with the run's own config
    run_dir = tmp / "t"
    assert f"checkpoints: {run_dir}/ (last.pth, best.pth" in proc.stdout and "in float32 (train.amp=" in proc.stdout
    assert f"python tools/eval.py {run_dir}/config.yaml --checkpoint {run_dir}/best.pth" in proc.stdout
    log = (run_dir / "train.log").read_text()  # what the run printed, kept beside its checkpoints
    assert "[iter 2] val mIoU" in log and "| road |" in log and f"checkpoints: {run_dir}/" in log
    assert '"val/mIoU"' in (run_dir / "scalars.json").read_text()
    return path, tmp / "t" / "best.pth"


def test_train_override_typo_is_one_line(trained):
    cfg, _ = trained
    proc = tool("train.py", cfg, "train.max_iter=5", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: command line: unknown key 'train.max_iter'; did you mean 'train.max_iters'?"


def test_overrides_may_follow_a_flag(trained):
    """``train.py CONFIG --no-progress key=value``: overrides after an option are overrides, not unknown arguments."""
    cfg, _ = trained
    proc = tool("train.py", cfg, "--no-progress", "train.max_iter=5", check=False)
    assert proc.returncode == 2 and "unrecognized arguments" not in proc.stderr
    assert proc.stderr.strip().endswith("did you mean 'train.max_iters'?")


def test_eval_prints_table_writes_json_and_predictions(trained, demo_root, tmp_path):
    cfg, ckpt = trained
    proc = tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", tmp_path / "pred", "--save-color",
                tmp_path / "color", "--mode", "slide", "--flip")
    assert "| road |" in proc.stdout and "mIoU" in proc.stdout
    metrics = json.loads((ckpt.parent / "eval_val_best_slide769x769-513x513_s0.3_flip.json").read_text())
    assert metrics["settings"] == {"checkpoint": str(ckpt), "split": "val", "mode": "slide", "scales": [0.3],
                                   "flip": True, "test_resize": None, "crop_size": [769, 769], "stride": [513, 513]}
    assert set(metrics["per_class"]) >= {"road", "sky", "bicycle"} and 0 <= metrics["mIoU"] <= 1
    assert metrics["images"] == 3 and metrics["skipped"] == []
    names = sorted(os.listdir(tmp_path / "pred"))  # label ids only: what the official evaluator searches
    assert len(names) == 3 and all(n.endswith("_leftImg8bit.png") for n in names)
    assert sorted(os.listdir(tmp_path / "color")) == [n[:-4] + "_color.png" for n in names]
    panel = read_mask(str(tmp_path / "color" / (names[0][:-4] + "_color.png")))  # prediction | truth | errors, legend
    assert panel.shape[1] == 3 * 512 + 8 and panel.shape[0] > 256 + 22 + 20
    ids = read_mask(str(tmp_path / "pred" / names[0]))
    assert set(np.unique(ids)) <= {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def test_eval_writes_the_confusion_matrix_and_plots(trained, demo_root):
    """The counts sum to the evaluated (non-ignored) pixels and give back eval_val_best_whole_s0.3.json's per-class
    IoU."""
    from segattn.configure import load_tool_config
    from segattn.data import build_dataset

    cfg, ckpt = trained
    proc = tool("eval.py", cfg, "--checkpoint", ckpt, "--save-plots")
    folder = ckpt.parent
    for name in ("confusion_val_best_whole_s0.3.json", "confusion_val_best_whole_s0.3.png",
                 "iou_val_best_whole_s0.3.png"):
        assert str(folder / name) in proc.stdout
    confusion = json.loads((folder / "confusion_val_best_whole_s0.3.json").read_text())
    counts = np.array(confusion["counts"], np.int64)
    assert confusion["rows"] == "ground truth" and len(confusion["classes"]) == counts.shape[0] == counts.shape[1]
    dataset = build_dataset(load_tool_config(str(cfg)).data, "val")
    labelled = sum(int((dataset[i][1] != 255).sum()) for i in range(len(dataset)))
    assert counts.sum() == confusion["pixels"] == labelled
    tp, union = np.diag(counts), counts.sum(0) + counts.sum(1) - np.diag(counts)
    metrics = json.loads((folder / "eval_val_best_whole_s0.3.json").read_text())
    for k, name in enumerate(confusion["classes"]):
        expected = metrics["per_class"][name]["IoU"]
        assert (expected is None) == (union[k] == 0)
        if expected is not None:
            assert abs(tp[k] / union[k] - expected) < 1e-12, name
    import cv2

    for name in ("confusion_val_best_whole_s0.3.png", "iou_val_best_whole_s0.3.png"):
        picture = cv2.imread(str(folder / name))
        assert picture is not None and min(picture.shape[:2]) > 300


def test_training_writes_its_resolved_config(trained):
    cfg, ckpt = trained
    written = OmegaConf.load(ckpt.parent / "config.yaml")
    from segattn.configure import load_tool_config

    assert OmegaConf.to_container(written) == OmegaConf.to_container(load_tool_config(str(cfg)), resolve=True)
    assert load_tool_config(str(ckpt.parent / "config.yaml")) == load_tool_config(str(cfg))  # a config the tools take


def test_resume_with_the_runs_own_config_yaml(demo_root, tmp_path):
    """The command a stopped run points to, ``train.py <run>/config.yaml --resume``, continues it: the config the run
    wrote and the one its checkpoint holds are the same run (no change reported, no --allow-changes needed)."""
    from segattn.engine.checkpoint import load_checkpoint
    from segattn.engine.trainer import Trainer

    cfg = tiny_config(demo_root, tmp_path, max_iters=3, val_interval=100, checkpoint_interval=1)
    Trainer(cfg, progress=False).fit(until=2)  # stopped at iteration 2, as a preempted run is
    own = tmp_path / "t" / "config.yaml"
    proc = tool("train.py", own, "--resume")
    assert "differs" not in proc.stderr, proc.stderr
    assert load_checkpoint(str(tmp_path / "t" / "last.pth"))["iteration"] == 3


@pytest.mark.parametrize("name", ["train.py", "eval.py", "infer.py"])  # its own parser; --checkpoint; --input
def test_print_config_resolves_overrides_and_exits(trained, name):
    cfg, _ = trained
    proc = tool(name, cfg, "model.head.recurrence=1", "train.max_iters=7", "--print-config")
    printed = OmegaConf.create(proc.stdout)
    assert printed.model.head.recurrence == 1 and printed.train.max_iters == 7 and printed.eval.mode == "whole"


def test_official_cityscapes_evaluator_on_the_folder_eval_wrote(trained, demo_root, tmp_path):
    """cityscapesscripts' own csEvalPixelLevelSemanticLabeling, on --save-pred exactly as written: same mIoU."""
    pytest.importorskip("cityscapesscripts", reason="the official evaluator comes with the test extra")
    import shutil

    cfg, ckpt = trained
    tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", tmp_path / "pred", "--save-color", tmp_path / "color")
    ours = json.loads((ckpt.parent / "eval_val_best_whole_s0.3.json").read_text())["mIoU"]
    export = tmp_path / "export"
    export.mkdir()
    env = {**os.environ, "CITYSCAPES_DATASET": str(demo_root), "CITYSCAPES_RESULTS": str(tmp_path / "pred"),
           "CITYSCAPES_EXPORT_DIR": str(export)}
    command = shutil.which("csEvalPixelLevelSemanticLabeling", path=os.path.dirname(sys.executable))
    proc = subprocess.run([command], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    official = json.loads((export / "resultPixelLevelSemanticLabeling.json").read_text())["averageScoreClasses"]
    assert abs(official - ours) <= 1e-4, (official, ours)


def test_eval_counts_an_unreadable_val_image_and_says_it_is_not_in_the_numbers(trained, demo_root, tmp_path):
    import glob
    import shutil

    cfg_path, ckpt = trained
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    bad = sorted(glob.glob(str(root / "leftImg8bit" / "val" / "*" / "*.png")))[1]
    with open(bad, "r+b") as f:
        f.truncate(100)  # a truncated PNG
    proc = tool("eval.py", cfg_path, f"data.root={root}", "--checkpoint", ckpt, check=False)
    assert proc.returncode == 1
    assert "1 of 3 images could not be read and are NOT in these numbers:" in proc.stdout
    assert os.path.basename(bad) in proc.stdout
    metrics = json.loads((ckpt.parent / "eval_val_best_whole_s0.3.json").read_text())
    assert metrics["images"] == 2 and len(metrics["skipped"]) == 1


def test_eval_bad_checkpoint_is_one_line(trained, tmp_path):
    cfg, _ = trained
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"")  # zero bytes (text, a cut zip and a folder: tests/engine/test_robustness.py)
    proc = tool("eval.py", cfg, "--checkpoint", bad, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}: not a readable checkpoint")
    proc = tool("eval.py", cfg, "--checkpoint", tmp_path / "absent.pth", check=False)
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr


def test_infer_folder_with_odd_images_and_every_kind_of_bad_one(trained, tmp_path):
    import cv2

    cfg, ckpt = trained
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_png(str(src / "rgb.png"), np.random.randint(0, 255, (37, 53, 3), np.uint8))
    write_png(str(src / "gray.png"), np.random.randint(0, 255, (40, 30), np.uint8), rgb=False)
    cv2.imwrite(str(src / "rgba.png"), np.random.randint(0, 255, (20, 25, 4), np.uint8))
    cv2.imwrite(str(src / "photo.jpg"), np.random.randint(0, 255, (33, 44, 3), np.uint8))
    write_png(str(src / "sub" / "deep.png"), np.random.randint(0, 255, (16, 16, 3), np.uint8))
    write_png(str(src / "a_one_pixel.png"), np.array([[[200, 10, 10]]], np.uint8))  # valid: predicted
    write_png(str(src / "tall.png"), np.random.randint(0, 255, (40, 1, 3), np.uint8))
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    (src / "empty.jpg").write_bytes(b"")
    ok, jpg = cv2.imencode(".jpg", np.random.randint(0, 255, (64, 64, 3), np.uint8))
    (src / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) - 40])
    ok, png = cv2.imencode(".png", np.random.randint(0, 255, (64, 64, 3), np.uint8))
    (src / "cut.png").write_bytes(png.tobytes()[: len(png) // 2])
    out = tmp_path / "out"
    proc = tool("infer.py", cfg, "--checkpoint", ckpt, "--input", src, "--output", out, "--recursive", check=False)
    assert proc.returncode == 1
    assert "7 images segmented" in proc.stdout and "4 failed" in proc.stdout
    failures = [line for line in proc.stdout.splitlines() if line.startswith("  failed: ")]
    assert sorted(os.path.basename(line.split(":")[1].strip()) for line in failures) == [
        "broken.png", "cut.jpg", "cut.png", "empty.jpg"]
    for stem, shape in (("rgb", (37, 53)), ("gray", (40, 30)), ("rgba", (20, 25)), ("photo", (33, 44)),
                        ("sub/deep", (16, 16)), ("a_one_pixel", (1, 1)), ("tall", (40, 1))):
        pred = read_mask(str(out / f"{stem}_pred.png"))
        assert pred.shape == shape and pred.max() < 19
        assert (out / f"{stem}_color.png").is_file() and (out / f"{stem}_overlay.jpg").is_file()


def test_an_error_inside_the_model_skips_only_that_image(trained, tmp_path):
    from segattn.config import load_config
    from segattn.data import dataset_palette
    from segattn.engine.predictor import infer_folder, load_model

    cfg_path, ckpt = trained
    cfg = load_config(str(cfg_path), ["eval.scales=[1.0]"])
    model, _ = load_model(cfg, str(ckpt), "cpu")
    forward = model.forward

    def flaky(x):
        if x.shape[-1] == 26:  # the one image the model cannot take
            raise RuntimeError("CUDA out of memory (simulated)")
        return forward(x)

    model.forward = flaky
    src = tmp_path / "in"
    src.mkdir()
    write_png(str(src / "a.png"), np.zeros((20, 26, 3), np.uint8))
    write_png(str(src / "b.png"), np.zeros((20, 26 * 2, 3), np.uint8))
    write_png(str(src / "c.png"), np.zeros((20, 30, 3), np.uint8))
    done, failed, _ = infer_folder(model, cfg, str(src), str(tmp_path / "out"), dataset_palette(cfg.data), "cpu",
                                progress=False)
    assert done == 2 and [os.path.basename(p) for p, _ in failed] == ["a.png"]
    assert failed[0][1].endswith("a.png: RuntimeError: CUDA out of memory (simulated)")
    assert (tmp_path / "out" / "c_pred.png").is_file()


def test_check_dataset_exit_status(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path)
    path = tmp_path / "cfg.yaml"
    OmegaConf.save(cfg, path)
    proc = tool("check_dataset.py", path)
    assert "dataset OK" in proc.stdout and "split 'train': 6 pairs checked, no problems" in proc.stdout
    cfg.data.root = str(tmp_path / "missing")
    OmegaConf.save(cfg, path)
    proc = tool("check_dataset.py", path, check=False)
    # a root without the dataset: the dataset's own line, naming the folder and where Cityscapes comes from
    assert proc.returncode == 1 and "split not found" in proc.stdout and "cityscapes-dataset.com" in proc.stdout


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
    proc = tool("visualize_attention.py", cfg, "--checkpoint", ckpt, "--image", image, "--query", "256,10",
                "--output", tmp_path / "off.png", check=False)  # y = 256 on a 256-row image: not clamped, refused
    assert proc.returncode == 2 and "outside the image" in proc.stderr and "256 x 512 pixels" in proc.stderr
    assert not (tmp_path / "off.png").exists()


KILLER = """
import os, signal, sys
sys.argv = [sys.argv[0], *sys.argv[2:]]
from segattn.engine.trainer import Trainer
kill_at, save = int(os.environ["KILL_AT"]), Trainer.save
def save_then_die(self, name, **kwargs):
    save(self, name, **kwargs)
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


def test_paper_config_without_cityscapes_says_where_it_comes_from(tmp_path):
    env_offline = {**os.environ, "HF_HUB_OFFLINE": "1"}  # were weights tried first, this would fail on them
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "configs/ccnet.yaml",
                           f"data.root={tmp_path / 'cityscapes'}", "--no-progress"], capture_output=True, text=True,
                          cwd=ROOT, env=env_offline, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for words in ("holds no Cityscapes split 'train'", "https://www.cityscapes-dataset.com",
                  "leftImg8bit_trainvaltest.zip", "gtFine_trainvaltest.zip", "data.root=PATH",
                  "python tools/train.py configs/demo/ccnet.yaml"):
        assert words in proc.stderr, words
    assert "weights" not in proc.stderr


def test_weights_that_cannot_be_fetched_are_one_line_with_the_ways_round(trained, tmp_path):
    cfg, _ = trained
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), str(cfg),
                           "model.encoder.name=resnet18", "model.encoder.weights=imagenet", "--no-progress"],
                          capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert proc.returncode == 2
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: model.encoder.weights=imagenet: could not fetch the imagenet weights of 'resnet18'")
    assert "model.encoder.weights=PATH" in line and "model.encoder.weights=null" in line and "huggingface" in line


def test_tools_load_the_model_channels_last_unless_told_not_to(trained):
    import torch

    from segattn.config import load_config
    from segattn.engine.predictor import load_model

    cfg_path, ckpt = trained
    shipped, _ = load_model(load_config(str(cfg_path)), str(ckpt), "cpu")
    nchw, _ = load_model(load_config(str(cfg_path), ["eval.channels_last=false"]), str(ckpt), "cpu")
    assert spatial_kernel(shipped).is_contiguous(memory_format=torch.channels_last)
    assert not spatial_kernel(shipped).is_contiguous() and spatial_kernel(nchw).is_contiguous()
    x = torch.randn(1, 3, 37, 53)
    with torch.no_grad():
        torch.testing.assert_close(shipped(x)["main"], nchw(x)["main"], rtol=1e-4, atol=1e-4)  # other sum order


def test_demo_data_is_never_generated_into_a_users_folder(tmp_path):
    """configs/demo inherits data.demo=true: pointed at a folder of one's own data, check_dataset (and every tool)
    says so in one line and writes nothing there."""
    users = tmp_path / "mydata"
    (users / "leftImg8bit" / "train" / "x").mkdir(parents=True)
    (users / "leftImg8bit" / "train" / "x" / "x_000000_000019_leftImg8bit.png").write_bytes(b"mine")
    before = sorted(p for p in users.rglob("*"))
    proc = tool("check_dataset.py", "configs/demo/fcn.yaml", f"data.root={users}", check=False)
    assert proc.returncode != 0
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "holds files that are not the demo set" in line and "data.demo=false" in line
    assert sorted(p for p in users.rglob("*")) == before
    # an empty folder, or an earlier demo set, is generated into as before
    from segattn.data.demo import generate

    generate(str(tmp_path / "empty"), num_train=1, num_val=1, progress=False)
    assert (tmp_path / "empty" / ".complete").is_file() and (tmp_path / "empty" / ".demo").is_file()
    generate(str(tmp_path / "empty"), num_train=2, num_val=1, progress=False)  # a bigger demo set over a demo set


def test_predictions_never_replace_or_reread_the_inputs(trained, tmp_path):
    """--output equal to --input is refused in one line; a.png and a.jpg get two sets of outputs; an --output
    inside --input is not read back as input by a --recursive run."""
    from segattn.config import load_config
    from segattn.data import dataset_palette
    from segattn.engine.predictor import infer_folder, load_model

    import cv2

    cfg_path, ckpt = trained
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "street.png", "street_overlay.jpg"):
        write_png(str(src / name), np.random.randint(0, 255, (12, 16, 3), np.uint8))
    ok, jpg = cv2.imencode(".jpg", np.random.randint(0, 255, (12, 16, 3), np.uint8))
    (src / "a.jpg").write_bytes(jpg.tobytes())
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = tool("infer.py", cfg_path, "--checkpoint", ckpt, "--input", src, "--output", src, check=False)
    assert proc.returncode != 0
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "is the --input folder" in line and "another --output" in line
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before

    cfg = load_config(str(cfg_path))
    model, _ = load_model(cfg, str(ckpt), "cpu")
    palette = dataset_palette(cfg.data)
    out = tmp_path / "out"
    assert infer_folder(model, cfg, str(src), str(out), palette, "cpu", progress=False) == (4, [], 0)
    assert {p.name for p in out.glob("*_pred.png")} == {"a_png_pred.png", "a_jpg_pred.png", "street_pred.png",
                                                         "street_overlay_pred.png"}
    inner = src / "predictions"
    for expected in ((4, [], 0), (0, [], 4)):  # the second run finds the same four images (done: skipped), not
        assert infer_folder(model, cfg, str(src), str(inner), palette, "cpu", recursive=True,  # the first run's
                            progress=False) == expected                                          # outputs
    assert len(list(inner.glob("*"))) == 4 * 3 + 1  # and manifest.json


def test_tools_take_the_config_saved_in_the_checkpoint(trained, tmp_path):
    """``eval.py --checkpoint CKPT [key=value]``: no CONFIG retyped; a CONFIG that builds another model names the
    settings that differ from the checkpoint's."""
    cfg, ckpt = trained
    proc = tool("eval.py", "--checkpoint", ckpt, "eval.flip=true", "--print-config")
    assert OmegaConf.create(proc.stdout).eval.flip is True
    proc = tool("eval.py", "--checkpoint", ckpt)
    assert "mIoU" in proc.stdout
    other = OmegaConf.load(cfg)
    other.model.head = {"type": "danet"}
    OmegaConf.save(other, tmp_path / "danet.yaml")
    proc = tool("eval.py", tmp_path / "danet.yaml", "--checkpoint", ckpt, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "the config differs from the one the checkpoint was trained with in" in proc.stderr
    assert "model.head.type 'ccnet' -> 'danet'" in proc.stderr


def test_save_pred_never_replaces_the_ground_truth_or_a_file_it_did_not_write(trained, demo_root, tmp_path):
    """--save-pred pointed at the val masks (where <stem>.png is a mask's name in the folder layout), or at a
    folder above them, is refused before anything is written; a folder holding a file of an output's name that
    eval did not write is refused; eval's own predictions are replaced by a second eval."""
    import glob
    import hashlib

    cfg, ckpt = trained
    masks = sorted(glob.glob(os.path.join(demo_root, "gtFine", "val", "*", "*.png")))
    before = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in masks}
    for target in (os.path.dirname(masks[0]), os.path.join(demo_root, "gtFine")):
        proc = tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", target, check=False)
        assert proc.returncode == 2 and "a folder of the split's images or labels" in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1
    assert {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in masks} == before
    pred = tmp_path / "pred"
    tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", pred)
    names = sorted(os.listdir(pred))
    tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", pred)  # its own files: replaced
    assert sorted(os.listdir(pred)) == names
    (pred / names[0]).write_bytes(open(masks[0], "rb").read())  # someone else's file of that name
    proc = tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", pred, check=False)
    assert proc.returncode == 2 and f"{names[0]} is there already, not written by tools/eval.py" in proc.stderr
    assert (pred / names[0]).read_bytes() == open(masks[0], "rb").read()
