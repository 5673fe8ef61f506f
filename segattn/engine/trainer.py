"""The training loop: iteration-based SGD with poly decay, periodic validation, exact resume.

``train(cfg)`` is everything ``tools/train.py`` does: builds the model, data,
loss, optimiser and schedule from the config; logs to a tqdm bar and
TensorBoard; writes ``<out_dir>/<experiment>/last.pth`` every
``checkpoint_interval`` iterations (everything a resume needs) and ``best.pth``
(the weights alone, to deploy) on a new best val mIoU.
The run folder and its lock are :mod:`.run_folder`'s, SIGTERM handling
:mod:`.signals`', the optimiser and schedule :mod:`.optim`'s, and comparing a
resume's config with the checkpoint's :mod:`segattn.configure`'s.
"""
import logging
import os
import time
from contextlib import closing, nullcontext

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from ..configure import HARMLESS_CHANGES, config_changes, describe_changes, with_defaults
from ..data import build_dataset, check_data_config
from ..data.io import output_file
from ..errors import ConfigError, DataError, OutputError, RunError
from ..models import build_model
from .checkpoint import (init_from, load_checkpoint, load_model_weights, newest_valid_checkpoint, non_finite,
                         remove_stale_temporaries, require_resume_state, save_atomic, weights_only, write_failure)
from .device import autocast_dtype, memory_format, resolve_device
from .distributed import all_ranks, gather_objects, init_distributed_mode, mean_over_ranks
from .evaluator import evaluate
from .loader import BadSampleCounter, train_batches
from .losses import build_loss
from .metrics import format_table
from .loggers import RunLog, open_loggers
from .rng import rank_seed, rng_state, seed_everything, set_rng_state
from .optim import build_optimizer, build_scheduler, gradients_finite
from .run_folder import RunLock, experiment_dir, refuse_replacing_another_run
from .signals import Preempted, preemption_signal
from .tensorboard import NullWriter, Visualiser

log = logging.getLogger("segattn")


class NonFiniteLoss(RunError):
    """Too many non-finite losses in a row: the run stops, its last good checkpoint kept."""


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
        self.device = ddp_device or resolve_device(t.device)
        # the data first: a missing dataset is said before any weights are downloaded
        check_data_config(cfg)
        self.train_set = build_dataset(cfg.data, cfg.data.train_split, train=True)
        self.val_set = build_dataset(cfg.data, cfg.data.val_split)
        if len(self.train_set) < t.batch_size:
            raise ConfigError(f"train.batch_size={t.batch_size} exceeds the {len(self.train_set)} training images")
        seed_everything(t.seed)
        model = build_model(cfg)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        if cfg.model.init_from:  # fine-tuning: another run's (or a converted) checkpoint; --resume overrides it
            init_from(model, cfg.model.init_from)
        if self.rank:  # then each rank its own dropout stream; rank 0 goes on as a single process would
            seed_everything(rank_seed(t.seed, self.rank))
        if self.world > 1 and cfg.model.norm == "syncbn":
            if self.device.type != "cuda":
                raise ConfigError("model.norm=syncbn needs CUDA (NCCL); under gloo on CPU use model.norm=gn "
                                  "(or bn: per-process statistics)")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.memory_format = memory_format(t.channels_last)
        # the memory format before DDP: its gradient buckets take the parameters' strides at construction
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.criterion = build_loss(cfg, self.model.head.loss_weights, self.model.head.presence_outputs)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.amp_dtype = autocast_dtype(t.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.iteration, self.best_miou, self.metrics = 0, -1.0, {}
        self.dir = experiment_dir(cfg)
        self.bad = BadSampleCounter(cfg.data.max_bad_samples)
        self.nonfinite = self.nonfinite_total = 0
        self.short_batches = 0  # iterations that trained on fewer images than the batch (unreadable ones skipped)
        self.saved_iteration = None  # iteration of the last last.pth this run wrote
        self.resumed = False
        self._lock = RunLock(self.dir) if self.main else None  # before the cleanup: never another live run's files
        if self.main and os.path.isdir(self.dir):
            for path in remove_stale_temporaries(self.dir):
                log.info("removed %s, left by a write that was killed", path)
        self._writer, self.run_log = None, RunLog()
        self.step_seconds = []  # wall time of each training step of this process, for comparisons

    # -- checkpoints -------------------------------------------------------------------------
    def state(self, rngs=None) -> dict:
        """What a checkpoint holds; ``rngs``: every rank's generator states (each rank's dropout stream is its own)."""
        rngs = rngs or [rng_state()]
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "iteration": self.iteration, "best_miou": self.best_miou, "metrics": self.metrics,
            "nonfinite_steps": self.nonfinite_total,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "rng": rngs[0], "rng_ranks": rngs,
        }

    def save(self, name: str, final: bool = False) -> bool:
        """Write ``name`` atomically; never during a run of skipped steps, never with non-finite weights.

        Returns whether it was written (the same answer on every rank). A write that fails (disk full,
        ``best.pth`` a folder) leaves the previous file as it was: said in one line, and the run goes on,
        unless it is the run's last write (``final``), which ends the run with that line.
        """
        if self.nonfinite:  # the same on every rank
            log.warning("%s not written at iteration %d: the last steps were skipped", name, self.iteration)
            return False
        failure, written = None, not self.main
        rngs = gather_objects(rng_state())  # every rank's generators, so a DDP resume is exact with dropout too
        if self.main:  # one writer; the others wait so nobody reads a half-made run folder
            state = self.state(rngs) if name != "best.pth" else weights_only(self.state(rngs))
            broken = non_finite(state["model"])
            path = os.path.join(self.dir, name)
            if broken:
                log.error("%s not written at iteration %d: %d tensors are not finite (e.g. %s)", name,
                          self.iteration, len(broken), broken[0])
            else:
                try:
                    save_atomic(state, path)
                except (OSError, RuntimeError) as err:  # torch's zip writer wraps a full disk in a RuntimeError
                    failure = f"{path}: could not be written at iteration {self.iteration} {write_failure(err, path)}"
                    if not final:
                        then = ("it was the last iteration" if self.iteration >= self.cfg.train.max_iters else
                                "training goes on, " + ("a later validation's new best writes it" if name == "best.pth"
                                                        else "the next checkpoint writes it again"))
                        log.error("%s; %s", failure, then)
                else:
                    written = True
        written = all_ranks(written)  # every rank learns whether rank 0's write succeeded
        if written and name == "last.pth":
            self.saved_iteration = self.iteration
        if failure and final:
            raise OutputError(failure)
        return written

    def resume(self, path: str, allow_changes: bool = False):
        """Continue the run ``path`` holds, exactly; a config that differs from the checkpoint's is checked first.

        Keys that only say where and how often to log, save or evaluate may differ (they are listed); any other
        difference would make the run no longer the one the checkpoint started, and is refused unless
        ``allow_changes``, when the new values are applied for real (learning rate, momentum, weight decay,
        schedule), not just recorded.
        """
        ckpt = load_checkpoint(path)
        require_resume_state(ckpt, path)
        saved = with_defaults(ckpt.get("config") or {})
        changed = config_changes(saved, OmegaConf.to_container(self.cfg, resolve=True))
        breaking = {k: v for k, v in changed.items() if not k.startswith(HARMLESS_CHANGES)}
        if breaking and not allow_changes:
            raise ConfigError(f"--resume {path}: the config differs from the checkpoint's in what it trains ("
                              f"{describe_changes(breaking)}); resume with the checkpoint's values, or add "
                              "--allow-changes to go on with the new ones")
        if "train.optimizer" in breaking:
            raise ConfigError(f"--resume {path}: train.optimizer cannot change within a run (the checkpoint holds "
                              f"{saved['train'].get('optimizer', 'sgd')}'s state); start a new run from its weights "
                              f"with model.init_from={path}")
        iteration = int(ckpt["iteration"])
        if self.cfg.train.max_iters <= iteration:
            raise ConfigError(f"--resume {path}: train.max_iters={self.cfg.train.max_iters} is not beyond the "
                              f"checkpoint's iteration {iteration}: nothing to train (raise train.max_iters, with "
                              "--allow-changes)")
        if changed and self.main:
            log.warning("resuming %s with a config that differs from the checkpoint's: %s", path,
                        describe_changes(changed))
        load_model_weights(self.model, ckpt["model"], path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration, self.best_miou = iteration, float(ckpt["best_miou"])
        self.metrics = ckpt.get("metrics", {})
        ranks = ckpt.get("rng_ranks") or [ckpt["rng"]]
        if len(ranks) != self.world and self.main:
            log.warning("%s was written by %d process(es), this run has %d: each rank's random stream (dropout) "
                        "restarts from rank 0's, so the run is not the uninterrupted one", path, len(ranks),
                        self.world)
        set_rng_state(ranks[self.rank] if len(ranks) == self.world else ranks[0])
        self.resumed = os.path.realpath(path)
        own = os.path.realpath(os.path.join(self.dir, "last.pth"))
        self.saved_iteration = self.iteration if self.resumed == own else None  # what this folder's last.pth holds
        if breaking:  # allowed: the optimiser and schedule take the new values (the saved state held the old)
            t = self.cfg.train
            decays = [g["weight_decay"] for g in build_optimizer(self.model, self.cfg).param_groups]
            for group, decay in zip(self.optimizer.param_groups, decays):
                group.update(weight_decay=decay, initial_lr=t.lr, **({"momentum": t.momentum} if "momentum" in group
                                                                      else {}))
            self.scheduler.base_lrs = [t.lr] * len(self.optimizer.param_groups)
            factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = t.lr * factor
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- loop --------------------------------------------------------------------------------
    def batches(self):
        """Endless micro-batches from the current iteration on, in the order an uninterrupted run uses."""
        t = self.cfg.train
        return train_batches(self.train_set, t.batch_size, self.micro_batch, self.cfg.data.workers, t.seed,
                             self.iteration, self.rank, self.world)

    def train_step(self, micro_batches) -> dict:
        """One SGD step over ``train.accumulate`` micro-batches (no DDP sync but on the last).

        A non-finite loss or gradient on any rank skips the whole update: the
        weights, BatchNorm statistics, optimiser and schedule stay as they were
        (the poly schedule counts applied steps). fp16 steps leave inf/NaN
        gradients to the GradScaler, which skips them itself.
        """
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        buffers = [b.detach().clone() for b in self.model.buffers()]  # BN statistics move in forward
        k, terms_sum = len(micro_batches), {}
        for i, (images, masks) in enumerate(micro_batches):
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            masks = masks.to(self.device, non_blocking=True)
            sync = self.world == 1 or i == k - 1
            with (nullcontext() if sync else self.net.no_sync()):
                with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                    outputs = self.net(images)
                loss, terms = self.criterion(outputs, masks)
                if not all_ranks(bool(torch.isfinite(loss))):
                    return self._skip_step(buffers, f"loss {float(loss.detach())}")
                self.scaler.scale(loss / k).backward()
            for name, value in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + value / k
        if not self.scaler.is_enabled() and not all_ranks(gradients_finite(self.model)):
            return self._skip_step(buffers, "gradients")
        self.nonfinite = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        terms_sum = mean_over_ranks(terms_sum)  # the global batch's loss, not rank 0's share
        terms_sum["total"] = sum(self.criterion.weights.get(n, 0) * v for n, v in terms_sum.items())
        return terms_sum

    def _skip_step(self, buffers, what: str) -> dict:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers):
                buffer.copy_(saved)
        self.nonfinite += 1
        self.nonfinite_total += 1
        log.warning("non-finite %s at iteration %d: step skipped, nothing changed (%d in a row)", what,
                    self.iteration + 1, self.nonfinite)
        if self.nonfinite >= self.cfg.train.max_nonfinite:
            kept = (f"{os.path.join(self.dir, 'last.pth')} from iteration {self.saved_iteration} is kept"
                    if self.saved_iteration is not None else "no checkpoint was written before it")
            raise NonFiniteLoss(
                f"{self.nonfinite} non-finite steps in a row (train.max_nonfinite={self.cfg.train.max_nonfinite}) "
                f"at iteration {self.iteration + 1}; stopped: {kept}. Lower train.lr or check the data")
        return {"total": float("nan")}

    def fit(self, until: int = None) -> dict:
        """Train to ``train.max_iters`` (or stop early at iteration ``until``, saving last.pth).

        SIGTERM (what a cluster scheduler sends before preemption) finishes the step under way, writes
        last.pth, and ends the run with :class:`Preempted` naming the iteration kept; ``--resume`` continues it
        exactly. Ctrl-C (SIGINT) says which checkpoint is kept before the run ends.
        """
        if self.main and self._lock is None:  # a second fit() of this trainer: the folder is its again
            self._lock = RunLock(self.dir)
        if self.main and not self.cfg.train.overwrite:
            try:
                refuse_replacing_another_run(self.dir, self.resumed, self.iteration)
            except RunError:
                self.close()
                raise
        with preemption_signal() as signalled:
            try:
                return self._fit(until, signalled)
            except KeyboardInterrupt:
                if self.main:
                    self.run_log.print(f"interrupted at iteration {self.iteration}: {self.kept()}; --resume "
                                       "continues from there")
                raise
            finally:
                self.close()

    def kept(self) -> str:
        """Which iteration ``last.pth`` holds, as the messages of a stopped run say it (only what is on disk)."""
        path = os.path.join(self.dir, "last.pth")
        if not os.path.isfile(path):
            return "no checkpoint was written"
        if self.saved_iteration is None:
            return f"{path} is as it was before this run (this run wrote none)"
        return f"{path} holds iteration {self.saved_iteration}"

    def close(self):
        """Let go of the experiment folder's lock (the run ended); a later run may take it."""
        self.run_log.close()  # its lines stop; train() still adds the last table and summary
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def summary(self) -> str:
        """Where the run's files went, what precision it trained in, and what to run next."""
        t = self.cfg.train
        precision = "float32" if self.amp_dtype is None else f"{str(self.amp_dtype).split('.')[-1]} autocast"
        on_disk = [n for n in ("last.pth", "best.pth") if os.path.isfile(os.path.join(self.dir, n))]
        files = [n + (f" (best val mIoU {100 * self.best_miou:.2f})" if n == "best.pth" and self.best_miou >= 0
                      else "") for n in on_disk] + [n for n in ("config.yaml", "train.log", "scalars.json")
                                                    if os.path.isfile(os.path.join(self.dir, n))]
        checkpoint = os.path.join(self.dir, "best.pth" if "best.pth" in on_disk else "last.pth")
        logs = os.path.join(t.log_dir, t.experiment)
        return "\n".join([
            f"run: {self.iteration} iterations on {self.device.type} in {precision} (train.amp={t.amp})",
            f"checkpoints: {self.dir}/ ({', '.join(files)})",
            f"logs: {logs} (tensorboard --logdir {t.log_dir})",
            "next:",
            f"  python tools/eval.py {self.dir}/config.yaml --checkpoint {checkpoint}",
            f"  python tools/infer.py {self.dir}/config.yaml --checkpoint {checkpoint} --input IMAGES/ --output OUT/",
            f"  python tools/explore.py {self.dir}/config.yaml --checkpoint {checkpoint}"])

    def _fit(self, until, signalled) -> dict:
        t = self.cfg.train
        stop = t.max_iters if until is None else min(until, t.max_iters)
        _ = self.writer  # the trackers open now: one that cannot write stops the run before its first step
        if self.main:
            os.makedirs(self.dir, exist_ok=True)
            # the resolved config beside the checkpoints: what this run trains, readable without loading a .pth
            try:
                with output_file(os.path.join(self.dir, "config.yaml")) as tmp:
                    OmegaConf.save(self.cfg, tmp, resolve=True)
            except OSError as err:  # a full disk before the first step: said, nothing trained or lost
                raise OutputError(f"{os.path.join(self.dir, 'config.yaml')} could not be written ({err.strerror}); "
                                  f"no iteration was trained: free space or give another train.out_dir") from None
            self.run_log = RunLog(os.path.join(self.dir, "train.log"))  # the run's lines beside its checkpoints
            self.run_log.open()
            self.run_log.line(f"training {t.experiment} from iteration {self.iteration} to {stop} on {self.device}")
        bar = tqdm(total=t.max_iters, initial=self.iteration, desc=f"train {t.experiment}", disable=not self.progress,
                   dynamic_ncols=True)
        preempted = False
        with closing(self.batches()) as batches:  # closed on a raise too: the loader's workers end with the run
            while self.iteration < stop:
                micro = []
                while len(micro) < t.accumulate:
                    batch = next(batches)
                    self.bad.report(batch)
                    if batch.images is not None:
                        micro.append((batch.images, batch.masks))
                    elif self.world > 1:
                        raise DataError("a micro-batch had no readable sample; under DDP every rank must step: "
                                        "run tools/check_dataset.py and fix the files")
                trained = sum(len(images) for images, _ in micro)
                if trained < self.micro_batch * t.accumulate:
                    self.short_batches += 1
                    log.warning("iteration %d trains on %d of %d images (unreadable ones skipped)", self.iteration + 1,
                                trained, self.micro_batch * t.accumulate)
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
                saved_now = self.iteration % t.checkpoint_interval == 0 or self.iteration in (t.max_iters, stop)
                if saved_now:
                    self.save("last.pth", final=self.iteration == stop)
                if self.main and self.iteration % t.log_interval == 0:  # the terminal has the bar, the file each line
                    line = f"iter {self.iteration}/{t.max_iters} loss {terms['total']:.4f} lr {lr:.2e}"
                    self.run_log.line(line)
                    if not self.progress:
                        log.info(line, extra={"in_run_log": True})
                if self.iteration < stop and not all_ranks(not signalled):  # one rank's signal stops every rank
                    if not saved_now:  # decided alike on every rank: save() is collective
                        self.save("last.pth", final=True)
                    preempted = True
                    break
        bar.close()
        if self.bad.count:
            log.warning("%d unreadable samples skipped; %d iterations trained on a short batch", self.bad.count,
                        self.short_batches)
        self.writer.close()
        self._writer = None
        if preempted:
            raise Preempted(f"{signalled.name or 'SIGTERM'} at iteration {self.iteration}: {self.kept()}; "
                            "run the same command with --resume to continue it exactly")
        return self.metrics

    @property
    def writer(self):
        """``train.loggers`` on rank 0 (opened on first use, so validate() works without fit()); a no-op elsewhere."""
        if self._writer is None:
            t = self.cfg.train
            self._writer = open_loggers(self.cfg, t.log_dir, t.experiment, self.dir) if self.main else NullWriter()
        return self._writer

    def validate(self):
        start = time.time()
        vis = Visualiser(self.writer, self.iteration, self.val_set.palette, self.cfg.train.num_vis)
        metrics = evaluate(self.model, self.val_set, self.cfg, self.device, self.progress, vis_callback=vis)
        metrics["iteration"] = self.iteration
        self.metrics = metrics
        self.writer.add_scalar("val/mIoU", metrics["mIoU"], self.iteration)
        for name, iou in zip(self.val_set.class_names, metrics["IoU"]):
            if iou == iou:  # not NaN
                self.writer.add_scalar(f"val_IoU/{name}", iou, self.iteration)
        if self.main:
            self.run_log.print(f"[iter {self.iteration}] val mIoU {100 * metrics['mIoU']:.2f} "
                               f"({time.time() - start:.0f}s)")
        if metrics["mIoU"] > self.best_miou:
            previous, self.best_miou = self.best_miou, metrics["mIoU"]  # best.pth records its own mIoU
            if not self.save("best.pth"):  # the best is what best.pth holds: a later new best writes it
                self.best_miou = previous


def train(cfg, resume=None, progress=True, allow_changes=False) -> dict:
    """Train from ``cfg``; ``resume`` is a checkpoint path or True for the experiment's last.pth."""
    trainer = Trainer(cfg, progress)
    if resume:
        path = newest_valid_checkpoint(trainer.dir) if resume is True else resume
        trainer.resume(path, allow_changes)
    metrics = trainer.fit()
    if metrics and trainer.main:
        trainer.run_log.print(format_table(metrics, trainer.val_set.class_names))
        trainer.run_log.print(trainer.summary())
    return metrics
