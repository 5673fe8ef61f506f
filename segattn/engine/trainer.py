"""The training loop: iteration-based SGD with poly decay, periodic validation, exact resume.

``train(cfg)`` is everything ``tools/train.py`` does: builds the model, data,
loss, optimiser and schedule from the config; logs to a tqdm bar and
TensorBoard; writes ``<out_dir>/<experiment>/last.pth`` every
``checkpoint_interval`` iterations and ``best.pth`` on a new best val mIoU.
"""
import logging
import os
import random
import time
from contextlib import nullcontext

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from ..data import build_dataset
from ..errors import ConfigError, DataError, MissingFileError, RunError
from ..models import build_model
from .checkpoint import load_checkpoint, load_model_weights, save_atomic
from .distributed import all_ranks, barrier, init_distributed_mode
from .evaluator import evaluate
from .loader import BadSampleCounter, EpochSampler, SkipBadSamples, make_loader
from .losses import build_loss
from .metrics import format_table

log = logging.getLogger("segattn")


class NonFiniteLoss(RunError):
    """Too many non-finite losses in a row: the run stops, its last good checkpoint kept."""


def newest_valid_checkpoint(folder: str) -> str:
    """The most recently written checkpoint in ``folder`` that loads; skips damaged files."""
    import glob

    candidates = sorted(glob.glob(os.path.join(folder, "*.pth")), key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            load_checkpoint(path)
        except Exception as err:  # damaged or foreign file: say so and try the next
            log.warning("skipping %s: %s", path, err)
            continue
        return path
    raise MissingFileError(f"--resume: no readable checkpoint in {folder!r}; train without --resume to start")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but torch sees no CUDA device; use train.device=cpu")
    return torch.device(name)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def poly_lambda(max_iters: int, power: float):
    return lambda it: (1 - min(it, max_iters) / max_iters) ** power


def experiment_dir(cfg) -> str:
    return os.path.join(cfg.train.out_dir, cfg.train.experiment)


def build_optimizer(model, cfg):
    t = cfg.train
    # no weight decay on norms and biases, as mmsegmentation's paper recipes
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": t.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, momentum=t.momentum)


class Trainer:
    """One training run. Under torchrun it is one process of a DDP run (see distributed.py)."""

    def __init__(self, cfg, progress: bool = True):
        self.cfg = cfg
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.rank, self.world, ddp_device = init_distributed_mode(t.device)
        self.main = self.rank == 0
        self.progress = progress and self.main
        if t.batch_size % (self.world * t.accumulate):
            raise ConfigError(f"train.batch_size={t.batch_size} (the global batch) must divide by the world size "
                             f"{self.world} x train.accumulate {t.accumulate}")
        self.micro_batch = t.batch_size // (self.world * t.accumulate)
        seed_everything(t.seed)
        self.device = ddp_device or resolve_device(t.device)
        model = build_model(cfg)
        if self.world > 1 and cfg.model.norm == "syncbn":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.train_set = build_dataset(cfg.data, cfg.data.train_split, train=True)
        self.val_set = build_dataset(cfg.data, cfg.data.val_split)
        if len(self.train_set) < t.batch_size:
            raise ConfigError(f"train.batch_size={t.batch_size} exceeds the {len(self.train_set)} training images")
        self.criterion = build_loss(cfg, self.model.head.loss_weights)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, poly_lambda(t.max_iters, t.poly_power))
        amp_ok = t.amp == "bf16" or (t.amp == "fp16" and self.device.type == "cuda")
        self.amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(t.amp) if amp_ok else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.iteration, self.best_miou, self.metrics = 0, -1.0, {}
        self.dir = experiment_dir(cfg)
        self.bad = BadSampleCounter(cfg.data.max_bad_samples)
        self.nonfinite = self.nonfinite_total = 0
        self._writer = None
        self.step_seconds = []  # wall time of each training step of this process, for comparisons

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "iteration": self.iteration, "best_miou": self.best_miou, "metrics": self.metrics,
            "nonfinite_steps": self.nonfinite_total,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "rng": {"torch": torch.get_rng_state(), "numpy": _np_state(), "python": _py_state()},
        }

    def save(self, name: str):
        if self.main:  # one writer; the others wait so nobody reads a half-made run folder
            save_atomic(self.state(), os.path.join(self.dir, name))
        barrier()

    def resume(self, path: str):
        ckpt = load_checkpoint(path)
        load_model_weights(self.model, ckpt["model"], path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration, self.best_miou = int(ckpt["iteration"]), float(ckpt["best_miou"])
        self.metrics = ckpt.get("metrics", {})
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(_np_unstate(rng["numpy"]))
        random.setstate(_py_unstate(rng["python"]))
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- loop --------------------------------------------------------------------------------
    def batches(self):
        """Endless micro-batches from the current iteration on, in the order an uninterrupted run uses."""
        t = self.cfg.train
        wrapped = SkipBadSamples(self.train_set, t.seed)
        per_epoch = len(self.train_set) // t.batch_size
        epoch, step = divmod(self.iteration, per_epoch)
        while True:
            wrapped.epoch = epoch
            sampler = EpochSampler(len(self.train_set), t.seed, epoch, step, t.batch_size, self.rank, self.world)
            yield from make_loader(wrapped, self.micro_batch, self.cfg.data.workers, sampler, drop_last=True)
            epoch, step = epoch + 1, 0

    def train_step(self, micro_batches) -> dict:
        """One SGD step over ``train.accumulate`` micro-batches (no DDP sync but on the last).

        A non-finite loss on any rank skips the whole update (weights and
        optimiser untouched; the schedule still advances with the iteration).
        """
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        k, terms_sum = len(micro_batches), {}
        for i, (images, masks) in enumerate(micro_batches):
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            sync = self.world == 1 or i == k - 1
            with (nullcontext() if sync else self.net.no_sync()):
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    outputs = self.net(images)
                loss, terms = self.criterion(outputs, masks)
                if not all_ranks(bool(torch.isfinite(loss))):
                    return self._skip_step(float(loss.detach()))
                self.scaler.scale(loss / k).backward()
            for name, value in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + value / k
        self.nonfinite = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        terms_sum["total"] = sum(self.criterion.weights.get(n, 0) * v for n, v in terms_sum.items())
        return terms_sum

    def _skip_step(self, loss: float) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite += 1
        self.nonfinite_total += 1
        log.warning("non-finite loss %s at iteration %d: step skipped (%d in a row)", loss, self.iteration + 1,
                    self.nonfinite)
        if self.nonfinite >= self.cfg.train.max_nonfinite:
            raise NonFiniteLoss(
                f"{self.nonfinite} non-finite losses in a row (train.max_nonfinite={self.cfg.train.max_nonfinite}) "
                f"at iteration {self.iteration + 1}; stopped, last good checkpoint kept in {self.dir}. "
                "Lower train.lr or check the data")
        self.scheduler.step()  # the iteration still counts: keep the poly schedule on time
        return {"total": loss}

    def fit(self, until: int = None) -> dict:
        """Train to ``train.max_iters`` (or stop early at iteration ``until``, saving last.pth)."""
        t = self.cfg.train
        stop = t.max_iters if until is None else min(until, t.max_iters)
        if self.main:
            os.makedirs(self.dir, exist_ok=True)
        bar = tqdm(total=t.max_iters, initial=self.iteration, desc=f"train {t.experiment}", disable=not self.progress,
                   dynamic_ncols=True)
        batches = self.batches()
        while self.iteration < stop:
            micro = []
            while len(micro) < t.accumulate:
                images, masks, _, bad = next(batches)
                self.bad.report(bad)
                if images is not None:
                    micro.append((images, masks))
                elif self.world > 1:
                    raise DataError("a micro-batch had no readable sample; under DDP every rank must step: "
                                       "run tools/check_dataset.py and fix the files")
            start = time.perf_counter()
            terms = self.train_step(micro)
            self.step_seconds.append(time.perf_counter() - start)
            self.iteration += 1
            lr = self.optimizer.param_groups[0]["lr"]
            bar.update(1)
            bar.set_postfix(loss=f"{terms['total']:.3f}", lr=f"{lr:.2e}")
            if self.iteration % t.log_interval == 0 or self.iteration == t.max_iters:
                for k, v in terms.items():
                    self.writer.add_scalar(f"loss/{k}", v, self.iteration)
                self.writer.add_scalar("lr", lr, self.iteration)
            if self.iteration % t.val_interval == 0 or self.iteration == t.max_iters:
                self.validate()
            if self.iteration % t.checkpoint_interval == 0 or self.iteration in (t.max_iters, stop):
                self.save("last.pth")
            if self.main and not self.progress and self.iteration % t.log_interval == 0:
                log.info("iter %d/%d loss %.4f lr %.2e", self.iteration, t.max_iters, terms["total"], lr)
        bar.close()
        self.writer.close()
        self._writer = None
        return self.metrics

    @property
    def writer(self):
        """TensorBoard on rank 0 (opened on first use, so validate() works without fit()); a no-op elsewhere."""
        if self._writer is None:
            t = self.cfg.train
            self._writer = _tensorboard(os.path.join(t.log_dir, t.experiment)) if self.main else _NullWriter()
        return self._writer

    def validate(self):
        start = time.time()
        vis = _Visualiser(self.writer, self.iteration, self.val_set.palette, self.cfg.train.num_vis)
        metrics = evaluate(self.model, self.val_set, self.cfg, self.device, self.progress, vis_callback=vis)
        metrics["iteration"] = self.iteration
        self.metrics = metrics
        self.writer.add_scalar("val/mIoU", metrics["mIoU"], self.iteration)
        for name, iou in zip(self.val_set.class_names, metrics["IoU"]):
            if iou == iou:  # not NaN
                self.writer.add_scalar(f"val_IoU/{name}", iou, self.iteration)
        if self.main:
            tqdm.write(f"[iter {self.iteration}] val mIoU {100 * metrics['mIoU']:.2f} ({time.time() - start:.0f}s)")
        if metrics["mIoU"] > self.best_miou:
            self.best_miou = metrics["mIoU"]
            self.save("best.pth")


class _Visualiser:
    """Logs the first ``n`` val images with ground truth and prediction to TensorBoard."""

    def __init__(self, writer, step, palette, n):
        self.writer, self.step, self.palette, self.n = writer, step, palette, n

    def __call__(self, index, image, mask, pred):
        if index >= self.n:
            return
        from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
        from ..data.palette import colorize

        img = image.cpu() * torch.tensor(IMAGENET_STD)[:, None, None] + torch.tensor(IMAGENET_MEAN)[:, None, None]
        img = (img.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
        panel = np.concatenate([img, colorize(mask.numpy().astype(np.uint8), self.palette),
                                colorize(pred.numpy().astype(np.uint8), self.palette)], axis=1)
        self.writer.add_image(f"val/{index}", panel, self.step, dataformats="HWC")


class _NullWriter:
    """TensorBoard stand-in for ranks other than 0."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _tensorboard(path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(path)


def _np_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _np_unstate(state):
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)


def _py_state():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _py_unstate(state):
    return (state[0], tuple(state[1]), state[2])


def train(cfg, resume=None, progress=True) -> dict:
    """Train from ``cfg``; ``resume`` is a checkpoint path or True for the experiment's last.pth."""
    trainer = Trainer(cfg, progress)
    if resume:
        path = newest_valid_checkpoint(trainer.dir) if resume is True else resume
        trainer.resume(path)
    metrics = trainer.fit()
    if metrics and trainer.main:
        tqdm.write(format_table(metrics, trainer.val_set.class_names))
    return metrics
