import os

import numpy as np
import pytest
import torch
from helpers import tiny_config

from segattn.engine.checkpoint import load_checkpoint
from segattn.engine.trainer import Trainer
from segattn.models import HEADS


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
    assert_best_is_the_weights_alone(tmp_path / "t", cfg)


def assert_best_is_the_weights_alone(folder, cfg):
    """best.pth holds what a user deploys (the weights, their config, iteration and metrics), not the optimiser's
    state, so it is about half last.pth's size with SGD's momentum; a resume never starts from it."""
    from segattn.engine.checkpoint import newest_valid_checkpoint
    from segattn.errors import CheckpointError

    best, last = load_checkpoint(str(folder / "best.pth")), load_checkpoint(str(folder / "last.pth"))
    assert set(best) == {"model", "iteration", "best_miou", "metrics", "config"}
    assert {"optimizer", "scheduler", "scaler", "rng"} <= set(last)
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in last["model"])  # one validation: same weights
    assert os.path.getsize(folder / "best.pth") < 0.6 * os.path.getsize(folder / "last.pth")
    later = os.path.getmtime(folder / "last.pth") + 10
    os.utime(folder / "best.pth", (later, later))  # newer than last.pth: still not a resume's start
    assert newest_valid_checkpoint(str(folder)) == str(folder / "last.pth")
    with pytest.raises(CheckpointError, match=r"best.pth: holds the weights only .*resume from the run's last.pth, "
                                              r"or start a new run from these weights with model.init_from="):
        Trainer(cfg, progress=False).resume(str(folder / "best.pth"))


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


def _assert_same_run(a, b):
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(value, b.model.state_dict()[key], rtol=0, atol=0, msg=key)
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for i in sa:
        torch.testing.assert_close(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"], rtol=0, atol=0)
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    assert a.metrics["mIoU"] == b.metrics["mIoU"]
    np.testing.assert_array_equal(a.metrics["IoU"], b.metrics["IoU"])  # NaN for classes absent from val


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_mid_epoch_is_bitwise_exact(demo_root, tmp_path, workers):
    """3 iterations per epoch: stop after 4 (mid-epoch 2), resume, stop after 7 (mid-epoch 3), resume."""
    def trainer(folder):
        cfg = tiny_config(demo_root, tmp_path / folder, max_iters=8, val_interval=8, checkpoint_interval=100)
        cfg.data.workers = workers
        return Trainer(cfg, progress=False)

    straight = trainer("a")
    straight.fit()
    last = os.path.join(tmp_path, "b", "t", "last.pth")
    trainer("b").fit(until=4)
    for stop in (7, None):
        resumed = trainer("b")
        resumed.resume(last)
        resumed.fit(until=stop)
    assert resumed.iteration == 8
    _assert_same_run(straight, resumed)


def test_init_from_keeps_a_classifier_of_another_class_count_fresh(tmp_path, caplog):
    """Fine-tuning to another label set: every weight but the classifiers comes from the checkpoint."""
    from segattn.engine.checkpoint import init_from
    from segattn.errors import CheckpointError, MissingFileError
    from segattn.models import build_model

    spec = {"head": "danet", "channels": 16, "aux": {"channels": 8}, "encoder": {"name": "resnet18", "weights": None}}
    source = build_model({**spec, "num_classes": 19})
    torch.save({"model": source.state_dict()}, tmp_path / "src.pth")
    target = build_model({**spec, "num_classes": 5})
    before = target.state_dict()
    fresh = init_from(target, str(tmp_path / "src.pth"))
    assert sorted(fresh) == sorted(k for k in before if ".cls_" in f".{k}")
    after = target.state_dict()
    for key, value in after.items():
        assert torch.equal(value, before[key] if key in fresh else source.state_dict()[key]), key
    assert "start fresh" in caplog.text
    other = build_model({**spec, "head": "ccnet", "num_classes": 5})
    with pytest.raises(CheckpointError, match="model.init_from=.*does not fit this model"):
        init_from(other, str(tmp_path / "src.pth"))
    with pytest.raises(MissingFileError, match="model.init_from: no such checkpoint"):
        init_from(other, str(tmp_path / "absent.pth"))


@pytest.mark.parametrize("head", HEADS.names())
def test_every_registered_head_trains_and_evaluates(head, demo_root, tmp_path):
    """Each head of the registry (the toy of tests/toys.py included) through one step, a checkpoint and validation."""
    cfg = tiny_config(demo_root, tmp_path, head=head, max_iters=2, val_interval=2)
    trainer = Trainer(cfg, progress=False)
    before = {k: v.clone() for k, v in trainer.model.head.state_dict().items()}
    metrics = trainer.fit()
    assert 0.0 <= metrics["mIoU"] <= 1.0 and len(metrics["IoU"]) == 19
    changed = [k for k, v in trainer.model.head.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "training left every weight of the head as it was"
    assert load_checkpoint(str(tmp_path / "t" / "best.pth"))["config"]["model"]["head"] == head


def test_recipe_options_of_the_optimiser_and_schedule():
    """weight_decay_all decays norms and biases too; min_lr floors the poly; poly_to_last reaches it at the end."""
    from segattn.config import load_config
    from segattn.engine.optim import build_optimizer, build_scheduler

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    paper = load_config("configs/demo/fcn.yaml", ["train.max_iters=11", "train.lr=0.1"])
    mmseg = load_config("configs/demo/fcn.yaml", ["train.max_iters=11", "train.lr=0.1", "train.weight_decay_all=true",
                               "train.min_lr=0.001", "train.poly_to_last=true"])
    decays = {cfg_name: sorted((len(g["params"]), g["weight_decay"]) for g in build_optimizer(model, cfg).param_groups)
              for cfg_name, cfg in (("paper", paper), ("mmseg", mmseg))}
    assert decays == {"paper": [(1, paper.train.weight_decay), (3, 0.0)], "mmseg": [(4, mmseg.train.weight_decay)]}
    for cfg, last in ((paper, 0.1 * (1 / 11) ** 0.9), (mmseg, 0.001)):
        opt = build_optimizer(model, cfg)
        sched = build_scheduler(opt, cfg)
        for _ in range(10):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(last, rel=1e-12)


def test_validation_with_test_resize_logs_panels_at_the_label_size(demo_root, tmp_path):
    """data.test_resize rescales the val image, not its label: the TensorBoard panels still line up."""
    cfg = tiny_config(demo_root, tmp_path, num_vis=2)
    cfg.data.test_resize = [60, 30]  # the 256 x 512 demo images to 30 x 60
    cfg.eval.scales = [1.0]
    trainer = Trainer(cfg, progress=False)
    images = []
    trainer._writer = type("W", (), {"add_image": lambda self, tag, img, step, dataformats: images.append(img.shape),
                                     "add_scalar": lambda *a, **k: None, "close": lambda self: None})()
    trainer.validate()
    assert images == [(256, 3 * 512, 3)] * 2


def test_sigterm_writes_a_checkpoint_after_the_step_and_resume_is_exact(demo_root, tmp_path):
    """A scheduler's SIGTERM mid-run: the step under way finishes, last.pth holds it, the run says which
    iteration is kept; --resume then ends exactly where an uninterrupted run ends."""
    import signal

    from segattn.engine.signals import Preempted

    def trainer(folder):
        cfg = tiny_config(demo_root, tmp_path / folder, max_iters=6, val_interval=6, checkpoint_interval=100)
        return Trainer(cfg, progress=False)

    straight = trainer("a")
    straight.fit()
    interrupted = trainer("b")
    step = interrupted.train_step

    def step_then_signal(micro):
        out = step(micro)
        if interrupted.iteration == 2:  # the third step is under way: the signal arrives inside it
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    interrupted.train_step = step_then_signal
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted, match=r"SIGTERM at iteration 3: .*last.pth holds iteration 3; .*--resume"):
        interrupted.fit()
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is the run's only
    last = os.path.join(tmp_path, "b", "t", "last.pth")
    assert load_checkpoint(last)["iteration"] == 3
    resumed = trainer("b")
    resumed.resume(last)
    resumed.fit()
    _assert_same_run(straight, resumed)


def test_resume_checks_the_config_against_the_checkpoint(demo_root, tmp_path, caplog):
    """Where/how-often keys may change (listed); a new lr is refused, or applied for real with allow_changes;
    a max_iters the checkpoint has reached trains nothing, and says so."""
    import copy
    import logging

    from segattn.errors import ConfigError

    cfg = tiny_config(demo_root, tmp_path, max_iters=4, val_interval=100, checkpoint_interval=2)
    Trainer(cfg, progress=False).fit(until=2)
    last = os.path.join(tmp_path, "t", "last.pth")

    def variant(**train):
        c = copy.deepcopy(cfg)
        for k, v in train.items():
            c.train[k] = v
        return Trainer(c, progress=False)

    with caplog.at_level(logging.WARNING, logger="segattn"):
        variant(log_interval=7).resume(last)
    assert any("train.log_interval 20 -> 7" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match=r"differs from the checkpoint's in what it trains \(train.lr 0.01 -> "
                                          r"0.05\).*--allow-changes"):
        variant(lr=0.05).resume(last)
    changed = variant(lr=0.05, momentum=0.5)
    changed.resume(last, allow_changes=True)
    assert changed.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * (1 - 2 / 4) ** 0.9, rel=1e-12)
    assert {g["momentum"] for g in changed.optimizer.param_groups} == {0.5}
    changed.fit()
    assert load_checkpoint(last)["config"]["train"]["lr"] == 0.05 and changed.iteration == 4
    with pytest.raises(ConfigError, match=r"train.max_iters=4 is not beyond the checkpoint's iteration 4"):
        variant(max_iters=4).resume(last, allow_changes=True)


def test_adamw_optimizer_trains_and_cannot_replace_sgd_within_a_run(demo_root, tmp_path):
    """train.optimizer=adamw builds AdamW with the same decay groups; a resume may not switch optimiser."""
    import copy

    from segattn.errors import ConfigError

    cfg = tiny_config(demo_root, tmp_path, max_iters=2, val_interval=100, checkpoint_interval=2)
    adamw = copy.deepcopy(cfg)
    adamw.train.optimizer, adamw.train.lr, adamw.train.experiment = "adamw", 1e-3, "a"
    trainer = Trainer(adamw, progress=False)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [cfg.train.weight_decay, 0.0]
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    Trainer(cfg, progress=False).fit()  # SGD: the run to resume
    with pytest.raises(ConfigError, match=r"train.optimizer cannot change.*model.init_from="):
        Trainer(adamw, progress=False).resume(os.path.join(tmp_path, "t", "last.pth"), allow_changes=True)
