"""tools/infer.py over a folder shared by processes (torchrun on CPU), killed, and run again."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import ROOT, tiny_config
from omegaconf import OmegaConf

from segattn.data.io import png_text, write_png
from segattn.engine import shards
from segattn.models import build_model

OUTPUTS = ("_pred.png", "_color.png", "_overlay.jpg")


@pytest.fixture(scope="module")
def model_files(demo_root, tmp_path_factory):
    """A config (whole images at full size: each image takes a while) and two checkpoints of different weights."""
    tmp = tmp_path_factory.mktemp("shards")
    cfg = tiny_config(demo_root, tmp, head="fcn")
    cfg.eval.scales = [1.0]
    OmegaConf.save(cfg, tmp / "cfg.yaml")
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True))
    torch.save({"model": model.state_dict()}, tmp / "a.pth")
    with torch.no_grad():
        model.head.cls_seg[1].bias.add_(1.0)
    torch.save({"model": model.state_dict()}, tmp / "b.pth")
    return tmp / "cfg.yaml", tmp / "a.pth", tmp / "b.pth"


def make_images(folder, count, size=(384, 768)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        y, x = np.mgrid[: size[0], : size[1]]
        image = np.stack([(x * rng.uniform(0.1, 0.3) + i * 20) % 256, (y * rng.uniform(0.2, 0.6)) % 256,
                          np.full(size, 40 * i % 256)], -1).astype(np.uint8)
        write_png(str(folder / f"img{i:02d}.png"), image)
    return folder


def infer_command(cfg, ckpt, src, out, processes=None):
    tool = [os.path.join(ROOT, "tools", "infer.py"), str(cfg), "--checkpoint", str(ckpt), "--input", str(src),
            "--output", str(out), "--no-progress"]
    if processes:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *tool]
    return [sys.executable, *tool]


def run(command):
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    return proc


def summaries(proc) -> dict:
    """``{process: (segmented, failed, skipped)}`` from the closing lines of each process."""
    import re

    out = {}
    for line in proc.stdout.splitlines():
        m = re.search(r"(?:process (\d+) of \d+: )?(\d+) images segmented into .*?, (\d+) failed"
                      r"(?:, (\d+) skipped)?", line)
        if m:
            out[int(m[1] or 1)] = (int(m[2]), int(m[3]), int(m[4] or 0))
    return out


def stamped(out) -> dict:
    return {p.name: png_text(str(p)).get(shards.STAMP_KEY) for p in out.glob("*_pred.png")}


def test_two_processes_share_the_folder_and_a_rerun_skips_what_is_done(model_files, tmp_path):
    cfg, a, b = model_files
    src, out = make_images(tmp_path / "in", 5, (48, 64)), tmp_path / "out"
    proc = run(infer_command(cfg, a, src, out, processes=2))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summaries(proc) == {1: (3, 0, 0), 2: (2, 0, 0)}  # images 0, 2, 4 and 1, 3
    names = sorted(os.listdir(out))
    assert names == sorted([f"img{i:02d}{s}" for i in range(5) for s in OUTPUTS] + ["manifest.json"])
    stamps = stamped(out)
    assert len(set(stamps.values())) == 1 and next(iter(stamps.values())).startswith("weights:")
    manifest = (out / "manifest.json").read_text()
    assert str(a) in manifest and '"processes": 2' in manifest and '"images": 5' in manifest

    again = run(infer_command(cfg, a, src, out))  # one process now: every image done by the same weights
    assert again.returncode == 0 and summaries(again) == {1: (0, 0, 5)}
    assert "5 skipped (done before with the same weights and settings)" in again.stdout
    other = run(infer_command(cfg, b, src, out))  # other weights: nothing is trusted
    assert summaries(other) == {1: (5, 0, 0)} and len(set(stamped(out).values()) - set(stamps.values())) == 1
    settings = run(infer_command(cfg, b, src, out) + ["eval.flip=true"])  # other settings: the same
    assert summaries(settings) == {1: (5, 0, 0)}


def _children(pid: int) -> list:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds torchrun's worker processes in /proc")
def test_a_killed_process_leaves_whole_files_and_the_rerun_finishes_the_rest(model_files, tmp_path):
    cfg, a, _ = model_files
    count = 12
    src, out = make_images(tmp_path / "in", count), tmp_path / "out"
    launcher = subprocess.Popen(infer_command(cfg, a, src, out, processes=2), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and launcher.poll() is None and not list(out.glob("*_pred.png")):
            time.sleep(0.05)
        workers = [pid for pid in _children(launcher.pid) if "infer.py" in open(f"/proc/{pid}/cmdline").read()]
        assert launcher.poll() is None and len(workers) == 2, "the run ended before it could be killed"
        os.kill(workers[1], signal.SIGKILL)  # one process dies mid-run; torchrun stops the other
        launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    finished = stamped(out)
    assert 0 < len(finished) < count
    # whatever was killed mid-write is no file under a final name; a temporary one may be left, and goes
    left = [name for name in os.listdir(out) if name.startswith(".")]
    pending = sorted(f"img{i:02d}" for i in range(count) if f"img{i:02d}_pred.png" not in finished)
    (out / f".{pending[0]}_color.png.k1ll3d.png").write_bytes(b"half a picture")
    rerun = run(infer_command(cfg, a, src, out, processes=2))
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    counts = summaries(rerun).values()
    assert sum(c[2] for c in counts) == len(finished) and sum(c[0] for c in counts) == count - len(finished)
    assert len(stamped(out)) == count and not [n for n in os.listdir(out) if n.startswith(".")], left
    for i in range(count):
        assert all((out / f"img{i:02d}{s}").is_file() for s in OUTPUTS)
