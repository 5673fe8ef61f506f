"""DDP on CPU (gloo, 2 processes spawned here) agrees with one process; so does accumulation."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers import ddp_config, ddp_probe_worker, ddp_worker

from segattn.engine.checkpoint import load_checkpoint
from segattn.engine.evaluator import evaluate
from segattn.engine.trainer import Trainer


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder):
    return load_checkpoint(os.path.join(folder, "t", "last.pth"))


def _assert_same_weights(a, b, atol):
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=atol, rtol=1e-4, msg=key)


@pytest.fixture(scope="module")
def single(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    Trainer(ddp_config(demo_root, out), progress=False).fit()
    return out


def test_two_process_ddp_matches_one_process_and_sharded_eval_is_exact(demo_root, single, tmp_path):
    mp.spawn(ddp_worker, args=(2, _free_port(), demo_root, tmp_path, {}), nprocs=2, join=True)
    ddp = _weights(tmp_path)
    assert ddp["iteration"] == 3
    _assert_same_weights(ddp, _weights(single), atol=1e-5)
    # the DDP run validated sharded across 2 ranks; one process on the same weights gives the same matrix
    trainer = Trainer(ddp_config(demo_root, tmp_path / "check"), progress=False)
    trainer.model.load_state_dict(ddp["model"])
    metrics = evaluate(trainer.model, trainer.val_set, trainer.cfg, "cpu", progress=False)
    assert metrics["IoU"] == pytest.approx(ddp["metrics"]["IoU"], abs=0, nan_ok=True)
    assert metrics["aAcc"] == ddp["metrics"]["aAcc"]


def test_accumulation_matches_the_full_batch(demo_root, single, tmp_path):
    Trainer(ddp_config(demo_root, tmp_path, accumulate=2), progress=False).fit()
    _assert_same_weights(_weights(tmp_path), _weights(single), atol=1e-5)


def test_batch_must_divide_world_and_accumulation(demo_root, tmp_path):
    with pytest.raises(ValueError, match=r"train.batch_size=4 \(the global batch\) must divide by the world size "
                                         r"1 x train.accumulate 3"):
        Trainer(ddp_config(demo_root, tmp_path, accumulate=3), progress=False)


def test_each_rank_has_its_own_dropout_stream_and_the_logged_loss_is_the_global_batch(demo_root, tmp_path):
    mp.spawn(ddp_probe_worker, args=(2, _free_port(), demo_root, tmp_path, "bn"), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert not torch.equal(r0["draws"], r1["draws"])  # different dropout masks on each rank
    assert r0["terms"] == r1["terms"]  # all-reduced: every rank logs the mean over the global batch


def test_syncbn_under_gloo_is_refused_with_the_cpu_form(demo_root, tmp_path):
    with pytest.raises(mp.ProcessRaisedException, match="model.norm=syncbn needs CUDA .*use model.norm=gn"):
        mp.spawn(ddp_probe_worker, args=(2, _free_port(), demo_root, tmp_path, "syncbn"), nprocs=2, join=True)
