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
"""
import logging
import os

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


def open_loggers(cfg, log_dir: str, experiment: str) -> Loggers:
    """The trackers ``cfg.train.loggers`` names (checked in the config's validation), each opened now: one that
    cannot be (its store unwritable) is an OutputError naming it, before any training step."""
    writers = []
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


__all__ = ["LOGGERS", "Loggers", "MLflowWriter", "open_loggers"]
