import os

import torch

from helpers import tiny_config
from segattn.engine.checkpoint import load_checkpoint
from segattn.engine.trainer import Trainer


def test_loss_decreases_and_checkpoints_are_written(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path, max_iters=25, val_interval=25, lr=0.02)
    cfg.data.scale_range = [0.3, 0.3]
    cfg.data.flip = False
    trainer = Trainer(cfg, progress=False)
    losses = []
    step = trainer.train_step
    trainer.train_step = lambda micro: losses.append(step(micro)) or losses[-1]
    metrics = trainer.fit()
    first, last = sum(l["total"] for l in losses[:5]) / 5, sum(l["total"] for l in losses[-5:]) / 5
    assert last < first * 0.8, (first, last)
    assert set(losses[0]) == {"main", "aux", "total"}
    assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["iteration"] == 25
    for name in ("last.pth", "best.pth"):
        ckpt = load_checkpoint(os.path.join(tmp_path, "t", name))
        assert ckpt["iteration"] == 25 and ckpt["config"]["model"]["head"] == "ccnet"
    assert os.listdir(tmp_path / "runs" / "t")  # TensorBoard event file


def test_resume_continues_with_identical_state(demo_root, tmp_path):
    straight = Trainer(tiny_config(demo_root, tmp_path / "a"), progress=False)
    straight.fit()

    first = Trainer(tiny_config(demo_root, tmp_path / "b"), progress=False)
    first.fit(until=3)
    resumed = Trainer(tiny_config(demo_root, tmp_path / "b"), progress=False)
    resumed.resume(os.path.join(tmp_path, "b", "t", "last.pth"))
    assert resumed.iteration == 3
    assert resumed.scheduler.last_epoch == 3
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]
