"""Experiment trackers for rank 0: TensorBoard (the default) and MLflow, given the same scalars and images.

``train.loggers`` lists them; :func:`open_loggers` returns one object with
TensorBoard's ``add_scalar`` / ``add_image`` / ``close`` that passes every call
to each. MLflow logs to ``train.mlflow_uri``, by default a SQLite store in the
log folder (``<log_dir>/mlflow.db``, artifacts in ``<log_dir>/mlartifacts``),
which works offline: ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
shows it. The run's resolved config goes to MLflow as parameters.

A tracker is never worth a run: one that cannot be opened stops the run
before its first step (one line naming the store), and one that fails later
(its store unwritable, its disk full) is dropped with one line while training
goes on, as a failed checkpoint write is.

Beside the checkpoints, whatever the trackers, a run keeps what
mmsegmentation's work folder keeps: ``scalars.json`` (:class:`ScalarsFile`,
one JSON object per line: an iteration's losses, learning rate and validation
metrics) and ``train.log`` (:class:`RunLog`: the run's log lines and what it
printed, the validation lines and the last table included).
"""
import json
import logging
import os
import time

from omegaconf import OmegaConf

from ..errors import MissingPackageError, OutputError, first_line

LOGGERS = ("tensorboard", "mlflow")
log = logging.getLogger("segattn")


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {first_line(err, 160)}"


class Loggers:
    """Every chosen tracker behind TensorBoard's writer interface; a tracker that fails is dropped, said once."""

    def __init__(self, writers):
        self.writers = dict(writers)  # name -> writer

    def _each(self, method: str, *args, **kwargs):
        for name, writer in list(self.writers.items()):
            try:
                getattr(writer, method)(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any failure of a tracker: the run goes on without it
                del self.writers[name]
                log.error("train.loggers: %s failed (%s); training goes on without it", name, _reason(err))

    def add_scalar(self, tag, value, step):
        self._each("add_scalar", tag, value, step)

    def add_image(self, tag, image, step, dataformats="HWC"):
        self._each("add_image", tag, image, step, dataformats=dataformats)

    def close(self):
        self._each("close")


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:500]
    return out


class MLflowWriter:
    """One MLflow run per training process, named after the experiment."""

    def __init__(self, cfg, log_dir: str, experiment: str, uri: str = None):
        try:
            import mlflow
        except ImportError:
            raise MissingPackageError("train.loggers: mlflow needs MLflow: pip install -e \".[mlflow]\"") from None
        self.mlflow = mlflow
        for name in ("mlflow", "alembic"):  # their database set-up lines, not the run's
            logging.getLogger(name).setLevel(logging.WARNING)
        root = os.path.abspath(log_dir)
        os.makedirs(root, exist_ok=True)
        self.uri = uri or f"sqlite:///{os.path.join(root, 'mlflow.db')}"
        self.client = mlflow.MlflowClient(self.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=os.path.join(root, "mlartifacts", experiment))
        self.run_id = self.client.create_run(experiment_id, run_name=experiment).info.run_id
        params = _flat(OmegaConf.to_container(cfg, resolve=True))
        keys = sorted(params)
        for start in range(0, len(keys), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, params[k])
                                                       for k in keys[start:start + 100]])

    def add_scalar(self, tag, value, step):
        self.client.log_metric(self.run_id, tag, float(value), step=int(step))

    def add_image(self, tag, image, step, dataformats="HWC"):
        self.client.log_image(self.run_id, image, key=tag.replace("/", "_"), step=int(step))

    def close(self):
        self.client.set_terminated(self.run_id)


class ScalarsFile:
    """``scalars.json`` in the run folder: per logged iteration one line ``{"iteration": N, "loss/main": ..., "lr":
    ..., "val/mIoU": ...}``, appended (a resumed run goes on in the same file; a reader keeps an iteration's last
    line). Images are TensorBoard's and MLflow's, not this file's."""

    def __init__(self, path: str):
        self.path, self.step, self.values = path, None, {}
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a"):  # a folder that cannot take the file is said before the first step
            pass

    def add_scalar(self, tag, value, step):
        if step != self.step:
            self.flush()
            self.step = int(step)
        self.values[tag] = float(value)

    def add_image(self, tag, image, step, dataformats="HWC"):
        pass

    def flush(self):
        if self.values:
            with open(self.path, "a") as f:
                f.write(json.dumps({"iteration": self.step, **self.values}, allow_nan=True) + "\n")
        self.values = {}

    def close(self):
        self.flush()


class RunLog:
    """``train.log`` in the run folder: the segattn logger's lines while the run trains (:meth:`open`) and the
    lines the run prints (:meth:`print`: to the terminal above the progress bar, and here), each with its time.
    ``path`` None (a rank other than 0): prints, keeps nothing. A file that cannot be written is said once and
    the run goes on without it."""

    def __init__(self, path: str = None):
        self.path, self.handler = path, None

    def open(self):
        if self.path and self.handler is None:
            try:
                self.handler = logging.FileHandler(self.path, encoding="utf-8")
            except OSError as err:
                log.error("%s: the run's log cannot be written (%s); training goes on without it", self.path,
                          err.strerror)
                self.path = None
                return
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            self.handler.addFilter(lambda record: not getattr(record, "in_run_log", False))  # written by line()
            log.addHandler(self.handler)

    def line(self, text: str):
        """``text`` into the file only (a line the progress bar shows on the terminal)."""
        if self.path:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO {text}\n")
            except OSError:
                pass  # the log is never worth the run; a full disk is said by the next checkpoint write

    def print(self, text: str):
        from tqdm import tqdm

        tqdm.write(text)
        self.line(text)

    def close(self):
        if self.handler is not None:
            log.removeHandler(self.handler)
            self.handler.close()
            self.handler = None


def open_loggers(cfg, log_dir: str, experiment: str, run_dir: str = None) -> Loggers:
    """The trackers ``cfg.train.loggers`` names (checked in the config's validation), each opened now: one that
    cannot be (its store unwritable) is an OutputError naming it, before any training step. ``run_dir``: also
    ``scalars.json`` there."""
    writers = []
    if run_dir:
        path = os.path.join(run_dir, "scalars.json")
        try:
            writers.append(("scalars.json", ScalarsFile(path)))
        except OSError as err:
            raise OutputError(f"{path} cannot be written ({err.strerror or err}); no iteration was trained: fix "
                              "train.out_dir or free space") from None
    for name in cfg.train.loggers:
        try:
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                writers.append((name, SummaryWriter(os.path.join(log_dir, experiment))))
            else:
                writers.append((name, MLflowWriter(cfg, log_dir, experiment, cfg.train.mlflow_uri)))
        except MissingPackageError:
            raise
        except Exception as err:  # noqa: BLE001 - a store that cannot be written, whatever the tracker says
            where = cfg.train.mlflow_uri or f"sqlite:///{os.path.join(os.path.abspath(log_dir), 'mlflow.db')}" \
                if name == "mlflow" else os.path.join(log_dir, experiment)
            raise OutputError(f"train.loggers: {name} cannot write to {where} ({_reason(err)}); fix "
                              f"{'train.mlflow_uri' if name == 'mlflow' else 'train.log_dir'} or leave {name} out of "
                              "train.loggers") from None
    return Loggers(writers)


__all__ = ["LOGGERS", "Loggers", "MLflowWriter", "RunLog", "ScalarsFile", "open_loggers"]
