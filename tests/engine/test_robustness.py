"""Bad files, damaged checkpoints and diverging runs never cost a user their work."""
import copy
import multiprocessing
import os
import stat

import numpy as np
import pytest
import torch
from helpers import tiny_config

from segattn.data.check import check_split
from segattn.data.io import write_png
from segattn.engine.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model_weights,
    newest_valid_checkpoint,
    save_atomic,
)
from segattn.engine.evaluator import evaluate
from segattn.engine.predictor import safe_output_path
from segattn.engine.trainer import NonFiniteLoss, Trainer
from segattn.errors import OutputError


def _cityscapes_tree(root):
    for i, (img_size, lab_size, value) in enumerate([((8, 8), (8, 8), 26), ((8, 8), (6, 8), 26),
                                                      ((8, 8), (8, 8), 250)]):
        d_img, d_gt = root / "leftImg8bit/train/x", root / "gtFine/train/x"
        d_img.mkdir(parents=True, exist_ok=True)
        d_gt.mkdir(parents=True, exist_ok=True)
        write_png(str(d_img / f"x_{i:06d}_000019_leftImg8bit.png"), np.zeros((*img_size, 3), np.uint8))
        write_png(str(d_gt / f"x_{i:06d}_000019_gtFine_labelIds.png"), np.full(lab_size, value, np.uint8))
    (root / "leftImg8bit/train/x/x_000003_000019_leftImg8bit.png").write_bytes(b"corrupt")
    write_png(str(root / "gtFine/train/x/x_000003_000019_gtFine_labelIds.png"), np.zeros((8, 8), np.uint8))
    write_png(str(root / "leftImg8bit/train/x/x_000004_000019_leftImg8bit.png"), np.zeros((8, 8, 3), np.uint8))
    write_png(str(root / "gtFine/train/x/x_000005_000019_gtFine_labelIds.png"), np.zeros((8, 8), np.uint8))


def test_check_split_reports_every_kind_of_problem(tmp_path):
    _cityscapes_tree(tmp_path)
    cfg = tiny_config(str(tmp_path), tmp_path).data
    report = check_split(cfg, "train")
    assert not report.ok
    assert set(report.problems) == {"images without labels", "labels without images", "unreadable files",
                                    "image/label size mismatches", "label values outside the known ids"}
    assert "x_000004" in report.problems["images without labels"][0]
    assert "[250]" in report.problems["label values outside the known ids"][0]
    assert "5 problems" in str(report) and "unreadable files: 1" in str(report)
    (missing,) = check_split(cfg, "val").problems["split not found"]  # the dataset's own line, with the layout
    assert "leftImg8bit/val" in missing and "cityscapes-dataset.com" in missing


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    save_atomic({"model": {"w": torch.ones(2)}, "iteration": 1}, str(path))

    def dying_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"model": {"w": torch.zeros(2)}, "iteration": 2}, str(path))
    assert load_checkpoint(str(path))["iteration"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]  # no temporary left behind


def test_resume_skips_damaged_newest_checkpoint(tmp_path):
    """The newest file that loads and holds a resume state: a truncated last.pth and a weights-only best.pth (both
    newer) are passed over."""
    save_atomic({"model": {}, "optimizer": {}, "iteration": 4}, str(tmp_path / "step4.pth"))
    save_atomic({"model": {}, "iteration": 4}, str(tmp_path / "best.pth"))
    (tmp_path / "last.pth").write_bytes(b"truncated")
    os.utime(tmp_path / "step4.pth", (1, 1))
    assert newest_valid_checkpoint(str(tmp_path)).endswith("step4.pth")
    with pytest.raises(FileNotFoundError, match="no readable checkpoint"):
        newest_valid_checkpoint(str(tmp_path / "empty"))


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    message = str(err.value)
    assert message == (f"{path}: holds pickled code, which is not executed (it asks for the global posix.system); "
                       "load only plain weights: tensors, numbers and dicts")
    assert "weights_only=False" not in message and "\n" not in message


@pytest.mark.parametrize("content", ["zero bytes", "text", "cut zip", "a folder"])
def test_an_unreadable_checkpoint_given_by_path_is_one_line(content, tmp_path):
    path = tmp_path / "given.pth"
    if content == "a folder":
        path.mkdir()
    elif content == "cut zip":
        save_atomic({"model": {"w": torch.zeros(1000)}, "iteration": 3}, str(path))
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(b"" if content == "zero bytes" else b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_mismatched_model_lists_keys():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1))
    with pytest.raises(CheckpointError, match=r"shape mismatches .*0.weight \(5, 3, 1, 1\) vs \(4, 3, 1, 1\)"):
        load_model_weights(model, {"0.weight": torch.zeros(5, 3, 1, 1), "0.bias": torch.zeros(4)}, "x.pth")
    with pytest.raises(CheckpointError, match="1 missing keys.*0.bias"):
        load_model_weights(model, {"0.weight": torch.zeros(4, 3, 1, 1)}, "x.pth")


def _full_state(trainer):
    return {"model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
            "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
            "scheduler": copy.deepcopy(trainer.scheduler.state_dict())}


def test_a_skipped_step_changes_nothing(demo_root, tmp_path):
    trainer = Trainer(tiny_config(demo_root, tmp_path, max_iters=6, max_nonfinite=3), progress=False)
    trainer.fit(until=2)  # momentum buffers and BN statistics exist and have moved
    before = _full_state(trainer)
    real = trainer.criterion.forward
    trainer.criterion.forward = lambda out, t: (real(out, t)[0] * float("nan"), {})
    with pytest.raises(NonFiniteLoss, match="3 non-finite steps in a row"):
        trainer.fit()
    assert trainer.nonfinite_total == 3
    after = _full_state(trainer)
    for k, v in before["model"].items():  # BN running statistics included
        torch.testing.assert_close(after["model"][k], v, rtol=0, atol=0, msg=k)
    assert after["scheduler"] == before["scheduler"]
    for i, state in before["optimizer"]["state"].items():
        torch.testing.assert_close(after["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"])


def test_a_diverging_run_keeps_the_checkpoint_from_before_trouble(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path, max_iters=30, max_nonfinite=3, checkpoint_interval=1, lr=1e6)
    cfg.model.encoder.name = "resnet18"  # diverges through its loss first (the narrow one's weights overflow first)
    trainer = Trainer(cfg, progress=False)
    with pytest.raises(NonFiniteLoss) as err:
        trainer.fit()
    kept = load_checkpoint(str(tmp_path / "t" / "last.pth"))
    assert f"last.pth from iteration {kept['iteration']} is kept" in str(err.value)
    first_skipped = trainer.iteration + 1 - 3 + 1  # the 3rd skip in a row raised at iteration trainer.iteration + 1
    assert kept["iteration"] == first_skipped - 1  # the last step before trouble; nothing written during the skips
    for key, value in kept["model"].items():
        assert torch.isfinite(value.float()).all(), key


def test_non_finite_gradients_are_skipped_like_a_non_finite_loss(demo_root, tmp_path):
    trainer = Trainer(tiny_config(demo_root, tmp_path, max_iters=3, max_nonfinite=5), progress=False)
    before = _full_state(trainer)
    head = trainer.model.head.cls_seg[1].weight
    hook = head.register_hook(lambda g: g * float("inf"))
    trainer.fit(until=1)
    assert trainer.nonfinite_total == 1
    torch.testing.assert_close(trainer.model.head.cls_seg[1].weight, before["model"]["head.cls_seg.1.weight"],
                               rtol=0, atol=0)
    hook.remove()


def test_stale_temporaries_are_removed_and_checkpoints_follow_the_umask(demo_root, tmp_path):
    run = tmp_path / "t"
    run.mkdir()
    (run / ".tmp-abc123.pth").write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        Trainer(tiny_config(demo_root, tmp_path, max_iters=1, val_interval=10), progress=False).fit()
    finally:
        os.umask(old)
    assert sorted(os.listdir(run)) == [".lock", "best.pth", "config.yaml", "last.pth", "scalars.json", "train.log"]
    assert stat.S_IMODE(os.stat(run / "last.pth").st_mode) == 0o644


def test_outputs_never_escape_the_output_folder(tmp_path):
    assert safe_output_path(str(tmp_path), "a/b").startswith(str(tmp_path))
    with pytest.raises(OutputError, match="outside --output"):
        safe_output_path(str(tmp_path), "../escape")


def test_huge_images_are_tiled():
    from omegaconf import OmegaConf

    from segattn.config import EvalConfig
    from segattn.engine.predictor import eval_settings

    cfg = OmegaConf.structured(EvalConfig(crop_size=[64, 64], stride=[48, 48]))
    assert eval_settings(cfg, np.zeros((100, 100, 3), np.uint8)).mode == "whole"
    assert eval_settings(cfg, np.zeros((300, 400, 3), np.uint8)).mode == "slide"


def test_sixteen_bit_and_exif_rotated_images_are_read(tmp_path):
    import cv2

    from segattn.data.io import read_image

    deep = (np.arange(12 * 10 * 3).reshape(12, 10, 3) * 100).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    img = read_image(str(tmp_path / "deep.png"))
    assert img.dtype == np.uint8 and img.shape == (12, 10, 3)
    np.testing.assert_allclose(img[..., ::-1].astype(float), np.round(deep / 257.0), atol=1)
    # a JPEG whose EXIF orientation says "rotate 90 CW": stored 20 wide x 10 high, shown 10 x 20
    from PIL import Image

    stored = Image.new("RGB", (20, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert read_image(str(tmp_path / "rot.jpg")).shape == (20, 10, 3)


def test_corrupt_training_sample_is_skipped_then_aborts_past_the_limit(demo_root, tmp_path, caplog):
    import glob
    import shutil

    from segattn.engine.loader import BadSampleLimit

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    bad = sorted(glob.glob(str(root / "leftImg8bit" / "train" / "*" / "*.png")))[0]
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n broken")
    cfg = tiny_config(str(root), tmp_path, max_iters=3, val_interval=3)
    cfg.data.max_bad_samples = 5
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    assert "skipped unreadable sample" in caplog.text and os.path.basename(bad) in caplog.text
    assert "trains on 1 of 2 images (unreadable ones skipped)" in caplog.text  # said, not silent
    assert trainer.short_batches == trainer.bad.count == 1  # 3 iterations: one epoch, the file read once
    assert "1 unreadable samples skipped; 1 iterations trained on a short batch" in caplog.text
    cfg.data.max_bad_samples = 0
    cfg.train.overwrite = True  # a second run in the same folder, on purpose
    with pytest.raises(BadSampleLimit, match="more than data.max_bad_samples=0 .*" + os.path.basename(bad)):
        Trainer(cfg, progress=False).fit()


def test_an_evaluation_stopped_by_an_error_in_a_worker_leaves_no_loader_worker(demo_root, tmp_path, monkeypatch):
    """A dataset that raises what no sample-skipping catches (a bug): the worker's error reaches the caller, whose
    traceback then holds the loader's iterator, and the worker has ended all the same."""
    cfg = tiny_config(demo_root, tmp_path)
    cfg.data.workers = 1
    trainer = Trainer(cfg, progress=False)

    def broken(self, index):
        raise RuntimeError("a bug in the dataset")
    monkeypatch.setattr(type(trainer.val_set), "__getitem__", broken)  # the forked worker has it too
    before = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match="a bug in the dataset"):
        evaluate(trainer.model, trainer.val_set, cfg, "cpu", progress=False)
    assert set(multiprocessing.active_children()) <= before


def _with_label_value(demo_root, tmp_path, value):
    import glob
    import shutil

    from segattn.data.io import read_mask

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    label = sorted(glob.glob(str(root / "gtFine" / "train" / "*" / "*_gtFine_labelIds.png")))[0]
    mask = read_mask(label)
    mask[:4, :4] = value
    write_png(label, mask, rgb=False)
    return root, label


def test_unknown_label_values_are_said_once_per_file(demo_root, tmp_path, caplog):
    root, label = _with_label_value(demo_root, tmp_path, 200)
    cfg = tiny_config(str(root), tmp_path, max_iters=6, val_interval=6)  # two epochs: the file is read twice
    Trainer(cfg, progress=False).fit()
    notes = [r.message for r in caplog.records if "are not ids of this dataset" in r.message]
    assert notes == [f"{label}: label values [200] are not ids of this dataset; trained as ignore (16 pixels)"]


@pytest.mark.parametrize("workers", [0, 1])
def test_unknown_label_values_can_be_refused(demo_root, tmp_path, workers):
    from segattn.data.base import LabelError
    from segattn.engine.run_folder import RunLock

    root, label = _with_label_value(demo_root, tmp_path, 200)
    cfg = tiny_config(str(root), tmp_path, max_iters=3, val_interval=3)
    cfg.data.unknown_labels, cfg.data.workers = "error", workers
    before = set(multiprocessing.active_children())
    with pytest.raises(LabelError) as err:
        Trainer(cfg, progress=False).fit()
    # the loader's worker has ended with the run, though the raise's traceback still holds the loader; it held a
    # copy of the run folder's lock, so the next run in the folder (the file fixed) was refused as "in use"
    assert set(multiprocessing.active_children()) <= before
    RunLock(str(tmp_path / "t")).release()
    assert str(err.value) == (f"{label}: label values [200] are not ids of this dataset (data.unknown_labels=error); "
                              "fix the file or set data.unknown_labels=warn")  # one line, from a worker too


def test_sixteen_bit_labels_beyond_255_are_refused_not_wrapped(tmp_path):
    """A 16-bit label PNG holding 263 was read as 7 (road): now the file is named, and check_dataset flags it."""
    from segattn.data.io import UnreadableImage, read_mask

    _cityscapes_tree(tmp_path)
    label = tmp_path / "gtFine/train/x/x_000000_000019_gtFine_labelIds.png"
    wide = np.full((8, 8), 26, np.uint16)
    wide[0, 0] = 263
    write_png(str(label), wide)
    with pytest.raises(UnreadableImage, match=r"x_000000_000019_gtFine_labelIds.png: label values reach 263"):
        read_mask(str(label))
    write_png(str(tmp_path / "ok16.png"), np.full((4, 4), 26, np.uint16))  # 16-bit within 0..255 reads as it is
    assert read_mask(str(tmp_path / "ok16.png")).tolist() == [[26] * 4] * 4
    report = check_split(tiny_config(str(tmp_path), tmp_path).data, "train")
    assert any("label values reach 263" in line for line in report.problems["unreadable files"])


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_keeps_the_previous(demo_root, tmp_path, monkeypatch,
                                                                                caplog):
    """best.pth a folder: said, and the run goes on; the disk full at the last write: one line naming the kept file."""
    import logging

    import segattn.engine.checkpoint as checkpoint_module
    from segattn.errors import OutputError

    cfg = tiny_config(demo_root, tmp_path, max_iters=4, val_interval=2, checkpoint_interval=2)
    trainer = Trainer(cfg, progress=False)
    os.makedirs(os.path.join(trainer.dir, "best.pth"))  # a folder where the best checkpoint goes
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if obj.get("iteration") == 4:
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0") from OSError(
                28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    with caplog.at_level(logging.ERROR, logger="segattn"):
        with pytest.raises(OutputError) as err:
            trainer.fit()
    message = str(err.value)
    assert "last.pth: could not be written at iteration 4" in message and "the previous last.pth is kept" in message
    assert "\n" not in message
    assert any("best.pth: could not be written at iteration 2" in r.getMessage() and "training goes on" in
               r.getMessage() for r in caplog.records)
    assert load_checkpoint(os.path.join(trainer.dir, "last.pth"))["iteration"] == 2
    assert trainer.best_miou == -1.0  # the best is what best.pth holds: nothing was written


def test_a_failed_best_write_is_written_by_the_next_validation(demo_root, tmp_path, monkeypatch):
    """best.pth unwritable at the first validation: the run's best stays what is on disk (none), so the second
    validation writes it; the summary names only the files there are."""
    import segattn.engine.checkpoint as checkpoint_module

    cfg = tiny_config(demo_root, tmp_path, max_iters=2, val_interval=1, checkpoint_interval=1)
    trainer = Trainer(cfg, progress=False)
    real_save, failed = checkpoint_module.save_atomic, []

    def first_best_fails(obj, path):
        if path.endswith("best.pth") and not failed:
            failed.append(obj["iteration"])
            raise OSError(28, "No space left on device")
        return real_save(obj, path)

    monkeypatch.setattr("segattn.engine.trainer.save_atomic", first_best_fails)
    trainer.fit()
    best = load_checkpoint(os.path.join(trainer.dir, "best.pth"))
    assert failed == [1] and best["iteration"] == 2  # written by the second validation, whatever its mIoU
    assert best["best_miou"] == trainer.best_miou == trainer.metrics["mIoU"]
    assert "best.pth (best val mIoU" in trainer.summary()


def test_the_summary_names_no_best_that_was_never_written(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path, max_iters=1)
    trainer = Trainer(cfg, progress=False)
    os.makedirs(os.path.join(trainer.dir, "best.pth"))  # the one validation's best.pth cannot be written
    trainer.fit()
    assert f"checkpoints: {trainer.dir}/ (last.pth, config.yaml, train.log, scalars.json)" in trainer.summary()
    assert f"--checkpoint {trainer.dir}/last.pth" in trainer.summary()


def test_a_refused_lock_closes_its_descriptor_once(tmp_path):
    """A RunLock refused (the folder held) must not close its file descriptor again when collected: the number may
    by then belong to another open file, another lock in the Python API."""
    import gc
    import subprocess
    import sys

    from segattn.engine.run_folder import RunLock
    from segattn.errors import RunError

    folder = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import time; from segattn.engine.run_folder import RunLock; "
                               f"lock = RunLock({folder!r}); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError) as refused:  # its traceback keeps the refused object alive until deleted
            RunLock(folder)
        other = os.open(str(tmp_path / "other"), os.O_RDWR | os.O_CREAT)  # the number the refusal just freed
        del refused
        gc.collect()
        os.fstat(other)  # still open: nothing closed it behind our back
        os.close(other)
    finally:
        holder.kill()
        holder.wait()


def test_a_run_never_overwrites_or_shares_another_runs_folder(demo_root, tmp_path):
    """A live run's folder is locked (the holder's pid said; the lock dies with its process); a finished run's
    checkpoints are not replaced by a new run unless it resumes or sets train.overwrite."""
    import subprocess
    import sys
    import time

    from segattn.errors import RunError

    cfg = tiny_config(demo_root, tmp_path, max_iters=2, val_interval=2)
    folder = os.path.join(str(tmp_path), "t")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from segattn.engine.run_folder import RunLock; "
                               f"lock = RunLock({folder!r}); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match=rf"t is in use by a live run \(pid {holder.pid} on .*\); wait for it"):
            Trainer(cfg, progress=False)
    finally:
        holder.kill()
        holder.wait()
    first = Trainer(cfg, progress=False)  # the killed holder's lock went with it
    first.fit()
    last = os.path.join(folder, "last.pth")
    written = os.path.getmtime(last)
    time.sleep(0.01)
    with pytest.raises(RunError, match=r"holds another run's last.pth and best.pth: .*--resume, .*another "
                                       r"train.experiment, or set train.overwrite=true"):
        Trainer(cfg, progress=False).fit()
    assert os.path.getmtime(last) == written
    cfg.train.overwrite = True
    Trainer(cfg, progress=False).fit()
    assert os.path.getmtime(last) > written


def test_a_resume_never_replaces_another_runs_checkpoints(demo_root, tmp_path):
    """``--resume CKPT train.experiment=U`` where U holds another finished run: refused as a new run is, its files
    untouched; resuming a run in its own folder, or with train.overwrite, goes on."""
    from segattn.errors import RunError

    for name in ("a", "b"):
        Trainer(tiny_config(demo_root, tmp_path, max_iters=2, val_interval=2, experiment=name), progress=False).fit()
    other = os.path.join(str(tmp_path), "b", "last.pth")
    written = os.path.getmtime(other)
    cfg = tiny_config(demo_root, tmp_path, max_iters=3, val_interval=3, experiment="b")
    trainer = Trainer(cfg, progress=False)
    trainer.resume(os.path.join(str(tmp_path), "a", "last.pth"), allow_changes=True)
    with pytest.raises(RunError, match=r"b holds another run's last.pth and best.pth: resuming .*a/last.pth there "
                                       r"would replace them"):
        trainer.fit()
    assert os.path.getmtime(other) == written
    own = Trainer(cfg, progress=False)  # b's own checkpoint, in its own folder
    own.resume(other, allow_changes=True)
    own.fit()
    assert load_checkpoint(other)["iteration"] == 3


def test_damaged_or_non_finite_checkpoints_are_refused(tmp_path):
    """A flipped byte in a tensor (which torch.load reads without a word) fails the checksum; a NaN weight is named."""
    from segattn.errors import CheckpointError

    marker = torch.full((64,), 1.2345)
    path = tmp_path / "last.pth"
    save_atomic({"model": {"w": marker, "b": torch.zeros(3)}, "iteration": 1}, str(path))
    assert torch.equal(load_checkpoint(str(path))["model"]["w"], marker)
    data = bytearray(path.read_bytes())
    at = data.find(marker.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))
    assert torch.load(str(path), weights_only=True)["model"]["w"][1] != marker[1]  # torch itself does not notice
    with pytest.raises(CheckpointError, match=r"last.pth: the contents differ from those written \(checksum"):
        load_checkpoint(str(path))
    nan = {"model": {"w": torch.tensor([1.0, float("nan")]), "b": torch.zeros(2)}, "iteration": 1}
    torch.save(nan, tmp_path / "nan.pth")  # as a foreign tool writes it: no digest
    with pytest.raises(CheckpointError, match=r"nan.pth: 1 weight tensors hold NaN or infinity \(e.g. w\)"):
        load_checkpoint(str(tmp_path / "nan.pth"))


@pytest.mark.parametrize("where", ["optimizer", "config"])
def test_a_flipped_byte_anywhere_in_a_checkpoint_is_refused(where, tmp_path):
    """The digest covers the whole payload: a byte flipped in the optimiser's state or in the saved config (which
    torch.load reads without a word) is refused, not only one in the model's weights; files that carry the
    earlier model-only digest are still checked against it."""
    from segattn.engine.checkpoint import tensor_digest
    from segattn.errors import CheckpointError

    momentum = torch.full((64,), 2.5)
    state = {"model": {"w": torch.ones(8)}, "iteration": 1, "config": {"train": {"experiment": "zqzqzqzqzq"}},
             "optimizer": {"state": {0: {"momentum_buffer": momentum}}, "param_groups": [{"lr": 0.01}]}}
    path = tmp_path / "last.pth"
    save_atomic(state, str(path))
    assert load_checkpoint(str(path))["config"]["train"]["experiment"] == "zqzqzqzqzq"
    data = bytearray(path.read_bytes())
    at = data.find(momentum.numpy().tobytes() if where == "optimizer" else b"zqzqzqzqzq")
    assert at > 0
    data[at + 5] ^= 0x02
    path.write_bytes(bytes(data))
    torch.load(str(path), weights_only=True)  # torch itself reads it without a word
    with pytest.raises(CheckpointError, match=r"last.pth: the contents differ from those written \(checksum "
                                              r"mismatch over the weights, optimiser state and config\)"):
        load_checkpoint(str(path))
    old = tmp_path / "old.pth"  # an earlier version's file: the model's digest alone
    torch.save({"model": {"w": torch.ones(8)}, "iteration": 1, "digest": tensor_digest({"w": torch.ones(8)})}, old)
    assert load_checkpoint(str(old))["iteration"] == 1
    torch.save({"model": {"w": torch.zeros(8)}, "iteration": 1, "digest": tensor_digest({"w": torch.ones(8)})}, old)
    with pytest.raises(CheckpointError, match="the weights differ from those written"):
        load_checkpoint(str(old))


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    """A small PNG claiming 30000 x 30000 is refused from its header, in one line naming data.max_pixels."""
    import struct
    import zlib

    from segattn.data import io

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(b"\x00" * 30001, 9)  # one row is enough for the header to claim the rest
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    for read in (io.read_image, io.read_mask):
        with pytest.raises(io.UnreadableImage, match=r"bomb.png: 30000x30000 is 900 megapixels, above "
                                                     r"data.max_pixels=268435456 \(refused before decoding\)"):
            read(str(path))
    small = tmp_path / "small.png"
    write_png(str(small), np.zeros((4, 6, 3), np.uint8))
    previous = io.MAX_PIXELS
    try:
        io.set_max_pixels(20)
        with pytest.raises(io.UnreadableImage, match="4x6|6x4"):
            io.read_image(str(small))
    finally:
        io.set_max_pixels(previous)
    assert io.read_image(str(small)).shape == (4, 6, 3)


@pytest.mark.parametrize("ext", ["hdr", "pfm"])
def test_formats_only_opencv_decodes_are_size_checked_too(ext, tmp_path):
    """Radiance HDR and PFM, which PIL cannot read, had gone to OpenCV's decoder unchecked (a 25 MB file could ask
    it for gigabytes): their headers are read first, as every other format's."""
    import cv2

    from segattn.data import io

    path = tmp_path / f"float.{ext}"
    assert cv2.imwrite(str(path), np.random.default_rng(0).random((40, 50, 3), dtype=np.float32))
    previous = io.MAX_PIXELS
    try:
        io.set_max_pixels(1999)
        with pytest.raises(io.UnreadableImage, match=rf"float.{ext}: 50x40 is 2000 pixels, above data.max_pixels=1999 "
                                                     r"\(refused before decoding\)"):
            io.read_image(str(path))
    finally:
        io.set_max_pixels(previous)
    assert io.read_image(str(path)).shape == (40, 50, 3)


def test_the_size_check_leaves_pils_own_guard_armed(tmp_path):
    """Reading an image never disarms PIL's decompression-bomb limit for the rest of the process (a later
    Image.open of the user's own would go unguarded)."""
    from PIL import Image

    from segattn.data import io

    limit = Image.MAX_IMAGE_PIXELS
    small = tmp_path / "small.png"
    write_png(str(small), np.zeros((4, 6, 3), np.uint8))
    io.read_image(str(small))
    io.read_mask(str(small))
    assert Image.MAX_IMAGE_PIXELS == limit and limit is not None


def test_rough_edges_before_the_first_step_are_one_line(demo_root, tmp_path, monkeypatch):
    """The experiment folder a file; a full disk when the run's config.yaml is written: one line each, and no
    iteration trained (so none lost)."""
    from segattn.errors import OutputError

    cfg = tiny_config(demo_root, tmp_path, max_iters=2)
    (tmp_path / "t").write_text("a file where the run's folder goes")
    with pytest.raises(OutputError, match=r"t is a file, not a folder; give another train.experiment"):
        Trainer(cfg, progress=False)
    (tmp_path / "t").unlink()
    trainer = Trainer(cfg, progress=False)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("segattn.engine.trainer.OmegaConf.save", full)
    with pytest.raises(OutputError, match=r"config.yaml could not be written \(No space left on device\); no "
                                          r"iteration was trained"):
        trainer.fit()
    assert trainer.iteration == 0


def test_messages_say_only_what_is_on_disk(demo_root, tmp_path, caplog):
    """A best.pth that fails at the last iteration does not say "training goes on"; a run resumed from another
    folder's checkpoint does not claim its own folder's last.pth holds that iteration."""
    import logging

    cfg = tiny_config(demo_root, tmp_path, max_iters=1, experiment="a")
    trainer = Trainer(cfg, progress=False)
    os.makedirs(os.path.join(trainer.dir, "best.pth"))
    with caplog.at_level(logging.ERROR, logger="segattn"):
        trainer.fit()
    (line,) = [r.getMessage() for r in caplog.records if "best.pth: could not be written" in r.getMessage()]
    assert line.endswith("it was the last iteration") and "training goes on" not in line
    other = Trainer(tiny_config(demo_root, tmp_path, max_iters=2, experiment="b"), progress=False)
    other.resume(os.path.join(trainer.dir, "last.pth"), allow_changes=True)
    assert other.kept() == "no checkpoint was written"
    other.close()
