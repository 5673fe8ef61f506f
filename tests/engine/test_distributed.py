"""DDP on CPU (gloo, 2 processes spawned here) agrees with one process; so does accumulation."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from helpers import ddp_config, ddp_probe_worker, ddp_worker, fit_in_two_stages

from segattn.engine.checkpoint import load_checkpoint
from segattn.engine.evaluator import evaluate
from segattn.engine.trainer import Trainer


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(folder, name="last.pth"):
    return load_checkpoint(os.path.join(folder, "t", name))


def _assert_same_run(a, b):
    """The same weights after one step to float32 rounding; after three, the same training within 5% of how far
    it moved each tensor.

    The two sides sum the same gradients in another order (a batch of 4 against two of 2, reduced by DDP or
    accumulated). oneDNN's weight-gradient reduction rounds differently per CPU kind (on an Intel Xeon with AMX
    about 2e-7 relative after one step) and three SGD steps amplify that, most on tensors that barely moved
    (a GroupNorm bias 1.4e-4 from its start differed by 4.7e-7 on an AMD EPYC); a wrong reduction (a sum instead
    of a mean, one rank's gradients only) is off by half the update or more.
    """
    first, second = _weights(a, "step1.pth"), _weights(b, "step1.pth")
    assert first["iteration"] == second["iteration"] == 1
    for key in first["model"]:
        torch.testing.assert_close(first["model"][key], second["model"][key], atol=1e-6, rtol=1e-5, msg=key)
    start, last, other = _weights(b, "step0.pth"), _weights(a), _weights(b)
    assert last["iteration"] == other["iteration"] == 3
    for key, x in last["model"].items():
        y, y0 = other["model"][key], start["model"][key]
        if not x.is_floating_point():
            assert torch.equal(x, y), key
            continue
        moved, apart = float((y - y0).abs().max()), float((x - y).abs().max())
        assert apart <= 0.05 * moved + 1e-7, (key, apart, moved)


@pytest.fixture(scope="module")
def single(demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    fit_in_two_stages(Trainer(ddp_config(demo_root, out), progress=False), out)
    return out


def test_two_process_ddp_matches_one_process_and_sharded_eval_is_exact(demo_root, single, tmp_path):
    mp.spawn(ddp_worker, args=(2, _free_port(), demo_root, tmp_path, {}), nprocs=2, join=True)
    _assert_same_run(tmp_path, single)
    ddp = _weights(tmp_path)
    # the DDP run validated sharded across 2 ranks; one process on the same weights gives the same matrix
    trainer = Trainer(ddp_config(demo_root, tmp_path / "check"), progress=False)
    trainer.model.load_state_dict(ddp["model"])
    metrics = evaluate(trainer.model, trainer.val_set, trainer.cfg, "cpu", progress=False)
    assert metrics["IoU"] == pytest.approx(ddp["metrics"]["IoU"], abs=0, nan_ok=True)
    assert metrics["aAcc"] == ddp["metrics"]["aAcc"]


def test_accumulation_matches_the_full_batch(demo_root, single, tmp_path):
    fit_in_two_stages(Trainer(ddp_config(demo_root, tmp_path, accumulate=2), progress=False), tmp_path)
    _assert_same_run(tmp_path, single)


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


def test_ddp_sigterm_on_one_rank_stops_all_and_resume_is_exact_with_dropout(demo_root, tmp_path):
    """A SIGTERM to one rank stops every rank after the step under way, with one checkpoint; each rank's generators
    are saved and each rank gets its own back: the resumed 2-process run with dropout ends bitwise where the
    uninterrupted one ends (with rank 0's states restored on every rank, it does not)."""
    from helpers import ddp_resume_worker

    mp.spawn(ddp_resume_worker, args=(2, _free_port(), demo_root, tmp_path), nprocs=2, join=True)
    straight, resumed = (load_checkpoint(os.path.join(tmp_path, side, "t", "last.pth")) for side in "ab")
    assert straight["iteration"] == resumed["iteration"] == 3 and len(resumed["rng_ranks"]) == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_emanet_bases_move_by_the_mean_over_ranks(tmp_path):
    """EMANet's moving average of the bases takes every process's batch (mmsegmentation's reduce_mean): two ranks
    end with the same bases, those of the mean of their two fitted bases, not of either rank's own."""
    import torch.nn.functional as F

    from helpers import ema_bases_worker

    from segattn.models.heads.emanet import EMAUnit

    inputs = [torch.randn(2, 8, 5, 6), torch.randn(2, 8, 5, 6) + 1.0]
    mp.spawn(ema_bases_worker, args=(2, _free_port(), inputs, str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"bases{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    unit = EMAUnit(8, num_bases=4, num_stages=3, momentum=0.1)
    start = unit.bases.clone()
    fitted = [unit.fit(x.reshape(2, 8, 30))[0].mean(0, keepdim=True) for x in inputs]
    expected = 0.9 * start + 0.1 * F.normalize((fitted[0] + fitted[1]) / 2, dim=1)
    own = 0.9 * start + 0.1 * F.normalize(fitted[0], dim=1)
    torch.testing.assert_close(got[0], got[1], rtol=0, atol=0)
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-6)
    assert (got[0] - own).abs().max() > 1e-3  # one rank's batch alone would give other bases
