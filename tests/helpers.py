"""Shared test fixtures' builders: a tiny demo dataset, a tiny training config, a tool runner, a layout probe."""
import contextlib
import os
import subprocess
import sys

import numpy as np
from omegaconf import OmegaConf

from segattn.config import Config

_DEMO_CACHE = {}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def local_site(directory, hub_dir):
    """A local web server over ``directory`` with torch.hub's cache set to ``hub_dir``; yields the server's address
    (``http://127.0.0.1:PORT``). The server stops and the cache folder is restored on leaving."""
    import functools
    import http.server
    import threading

    import torch

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(hub_dir))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        torch.hub.set_dir(old_hub)
        server.shutdown()


def run_tool(name, *args, check=True):
    """``python tools/<name> args...`` from the repository root, as a user runs it; AssertionError on failure."""
    tests = os.path.dirname(os.path.abspath(__file__))  # so that a config's ``imports: [toys]`` finds tests/toys.py
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def spatial_kernel(model):
    """The model's first convolution weight wider than 1x1: its strides tell the model's memory format (a 1x1
    weight is contiguous in both formats at once)."""
    return next(p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1)


def tiny_demo(root_parent) -> str:
    """A 6-train / 3-val demo dataset (generated once per session)."""
    if "root" not in _DEMO_CACHE:
        from segattn.data.demo import generate

        _DEMO_CACHE["root"] = generate(os.path.join(str(root_parent), "demo"), num_train=6, num_val=3,
                                       progress=False)
    return _DEMO_CACHE["root"]


# the encoder of the tests' tiny runs: ResNetV1c-10 at a quarter width (the context probe's), 0.2 M parameters
# against ResNet-18's 11 M: the same dilated stages, output stride and layer3/layer4 features every head and tool
# reads, at a tenth of the step time and a sixtieth of the checkpoint size
ENCODER = "tu-resnet10c_narrow"


def tiny_config(root, out_dir, head="ccnet", **train):
    cfg = OmegaConf.structured(Config)
    cfg.model = OmegaConf.merge(cfg.model, {"head": head, "channels": 16, "aux": {"channels": 8},
                                            "encoder": {"name": ENCODER, "weights": None}})
    cfg.data = OmegaConf.merge(cfg.data, {"root": root, "crop_size": [64, 96], "scale_range": [0.25, 0.35],
                                          "workers": 0})
    cfg.train = OmegaConf.merge(cfg.train, {"experiment": "t", "out_dir": str(out_dir),
                                            "log_dir": str(out_dir / "runs"), "batch_size": 2, "max_iters": 6,
                                            "val_interval": 1000, "checkpoint_interval": 1000, "lr": 0.01,
                                            "threads": 0, **train})
    cfg.eval = OmegaConf.merge(cfg.eval, {"scales": [0.3]})
    return cfg


def ddp_config(root, out_dir, **train):
    """Deterministic settings under which 1 and 2 processes must agree: GroupNorm, no dropout, no padding."""
    cfg = tiny_config(root, out_dir, batch_size=4, max_iters=3, val_interval=3, threads=1, **train)
    cfg.model.norm = "gn"
    cfg.model.dropout = 0.0
    cfg.data.scale_range = [0.3, 0.3]
    return cfg


def fit_in_two_stages(trainer, out_dir):
    """Keep the initial weights as ``t/step0.pth``, train to iteration 1 and keep ``t/step1.pth``, then train on to
    ``max_iters`` (``t/last.pth``)."""
    import shutil

    trainer.save("step0.pth")
    trainer.fit(until=1)
    if trainer.main:
        shutil.copy(os.path.join(str(out_dir), "t", "last.pth"), os.path.join(str(out_dir), "t", "step1.pth"))
    return trainer.fit()


def ddp_worker(rank, world, port, root, out_dir, overrides):
    """Entry point of one spawned process: train with the DDP config as rank ``rank``."""
    import torch.distributed as dist

    from segattn.engine.trainer import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    cfg = ddp_config(root, out_dir, **overrides)
    cfg.train.device = "cpu"
    try:
        fit_in_two_stages(Trainer(cfg, progress=False), out_dir)
    finally:
        dist.destroy_process_group()


def ddp_probe_worker(rank, world, port, root, out_dir, norm="bn"):
    """One rank of a 2-process run that records its dropout stream and the loss it logs for one step."""
    import torch
    import torch.distributed as dist

    from segattn.engine.trainer import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    cfg = tiny_config(root, out_dir, batch_size=4, max_iters=1, val_interval=100, threads=1)
    cfg.train.device, cfg.model.norm = "cpu", norm
    try:
        trainer = Trainer(cfg, progress=False)
        state = torch.get_rng_state()
        draws = torch.rand(8)  # what the next dropout mask is made from
        torch.set_rng_state(state)
        batch = next(trainer.batches())
        terms = trainer.train_step([(batch.images, batch.masks)])
        torch.save({"draws": draws, "terms": terms}, os.path.join(str(out_dir), f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def ddp_resume_worker(rank, world, port, root, out_dir):
    """One rank of a 2-process run with dropout: straight to iteration 3 in ``a``; in ``b`` a SIGTERM reaches rank 1
    alone during the second step, every rank stops after it with last.pth at iteration 2 (no rank left waiting in
    a collective), then a new trainer resumes last.pth and trains on to 3."""
    import signal

    import torch.distributed as dist

    from segattn.engine.signals import Preempted
    from segattn.engine.trainer import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))

    def trainer(folder):
        import pathlib

        cfg = ddp_config(root, pathlib.Path(out_dir) / folder)
        cfg.model.dropout = 0.3  # each rank draws its own masks: the stream a resume must give back to each
        cfg.train.device = "cpu"
        return Trainer(cfg, progress=False)
    try:
        trainer("a").fit()
        preempted = trainer("b")
        if rank == 1:
            step = preempted.train_step

            def step_then_signal(micro):
                out = step(micro)
                if preempted.iteration == 1:  # the second step is under way on this rank only
                    os.kill(os.getpid(), signal.SIGTERM)
                return out
            preempted.train_step = step_then_signal
        try:
            preempted.fit()
            raise AssertionError(f"rank {rank} was not stopped by rank 1's SIGTERM")
        except Preempted as err:
            assert "at iteration 2: " in str(err) and "holds iteration 2" in str(err), str(err)
        resumed = trainer("b")
        resumed.resume(os.path.join(str(out_dir), "b", "t", "last.pth"))
        resumed.fit()
    finally:
        dist.destroy_process_group()


def ema_bases_worker(rank, world, port, inputs, out_dir):
    """One rank of EMANet's EM unit taking one training forward on its own batch; saves the bases after it."""
    import torch
    import torch.distributed as dist

    from segattn.models.heads.emanet import EMAUnit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial bases on every rank
        unit = EMAUnit(8, num_bases=4, num_stages=3, momentum=0.1).train()
        unit(inputs[rank])
        torch.save(unit.bases, os.path.join(out_dir, f"bases{rank}.pt"))
    finally:
        dist.destroy_process_group()


def export_model(head, root, out_dir, recurrence=2):
    """``(config, model)`` of the export tests: ``head`` on :func:`tiny_config` at eval scale 0.5, random weights
    (seed 0), the attention gates at 0.7 so that the attention counts in the logits compared."""
    import torch

    from segattn.models import HEADS, build_model

    cfg = tiny_config(root, out_dir, head=head)
    if "recurrence" in HEADS.options(head):
        cfg.model.head = {"type": head, "recurrence": recurrence}
    cfg.eval.scales = [0.5]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.7)
    return cfg, model


def assert_labels_are_argmax(labels, logits, tie=1e-5, agree=1.0):
    """The graph's labels output is the argmax of its logits: equal wherever the top two differ by more than a
    rounding (two passes of a runtime may differ there), on at least ``agree`` of those pixels (an int8 file's two
    compiled forms may round one 8-bit step apart; an argmax over the wrong axis agrees on a few percent)."""
    assert labels.dtype == np.uint8 and labels.shape == logits.shape[1:]
    top2 = np.sort(logits, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > tie * np.abs(top2[1]).clip(1)
    assert clear.mean() > 0.9 and (labels == logits.argmax(0))[clear].mean() >= agree
