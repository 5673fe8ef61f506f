"""train.loggers: TensorBoard and MLflow (its real local SQLite store, read back through its client) get the same
scalars and the validation images."""
import pytest
import torch
from omegaconf import OmegaConf

from helpers import tiny_config
from segattn.config import validate
from segattn.errors import ConfigError


def test_unknown_logger_is_one_line(demo_root, tmp_path):
    cfg = tiny_config(demo_root, tmp_path)
    cfg.train.loggers = ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match=r"train.loggers unknown \['wandb'\]; choose from tensorboard, mlflow"):
        validate(cfg)


def test_mlflow_and_tensorboard_get_the_same_scalars_and_images(demo_root, tmp_path, caplog):
    """... and scalars.json beside the checkpoints holds the same scalars, train.log the run's lines and table."""
    import json
    import logging

    pytest.importorskip("mlflow", reason="MLflow comes with the mlflow extra")
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from segattn.engine.trainer import train

    cfg = tiny_config(demo_root, tmp_path, max_iters=2, val_interval=2, log_interval=1)
    cfg.train.loggers = ["tensorboard", "mlflow"]
    cfg.train.num_vis = 1
    with caplog.at_level(logging.INFO, logger="segattn"):  # as the tools log: a line reaches train.log once
        metrics = train(cfg, progress=False)
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.run_name == "t" and run.info.status == "FINISHED"
    assert run.data.params["model.head"] == "ccnet" and run.data.params["train.max_iters"] == "2"  # the config
    events = EventAccumulator(str(tmp_path / "runs" / "t"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert "val/mIoU" in tags and "lr" in tags and any(t.startswith("loss/") for t in tags)
    assert set(run.data.metrics) == tags
    for tag in tags:
        board = [(e.step, e.value) for e in events.Scalars(tag)]
        tracked = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, tag))
        assert [s for s, _ in board] == [s for s, _ in tracked], tag
        torch.testing.assert_close([v for _, v in tracked], [v for _, v in board], rtol=1e-6, atol=0)  # fp32 there
    assert abs(run.data.metrics["val/mIoU"] - metrics["mIoU"]) < 1e-6
    assert events.Tags()["images"] == ["val/0"]
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("val_0" in a for a in artifacts), artifacts
    assert OmegaConf.load(tmp_path / "t" / "config.yaml").train.loggers == ["tensorboard", "mlflow"]
    lines = [json.loads(line) for line in (tmp_path / "t" / "scalars.json").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    for tag in tags:
        board = [(e.step, e.value) for e in events.Scalars(tag)]
        kept = [(line["iteration"], line[tag]) for line in lines if tag in line]
        torch.testing.assert_close(kept, board, rtol=1e-6, atol=0)
    log = (tmp_path / "t" / "train.log").read_text()
    assert log.count("iter 1/2 loss ") == 1 and log.count("iter 2/2 loss ") == 1
    assert f"[iter 2] val mIoU {100 * metrics['mIoU']:.2f}" in log and "| road |" in log and "next:" in log


def test_a_store_that_cannot_be_written_stops_the_run_before_its_first_step(demo_root, tmp_path):
    pytest.importorskip("mlflow", reason="MLflow comes with the mlflow extra")
    from segattn.engine.trainer import Trainer
    from segattn.errors import OutputError

    (tmp_path / "a_file").write_text("not a folder")
    cfg = tiny_config(demo_root, tmp_path, max_iters=2)
    cfg.train.loggers = ["tensorboard", "mlflow"]
    cfg.train.mlflow_uri = f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}"
    trainer = Trainer(cfg, progress=False)
    with pytest.raises(OutputError, match=r"^train.loggers: mlflow cannot write to sqlite:///.*a_file/mlflow.db "
                                          r"\(.*\); fix train.mlflow_uri or leave mlflow out of train.loggers$"):
        trainer.fit()
    assert trainer.iteration == 0 and not (tmp_path / "t" / "last.pth").exists()


def test_a_tracker_failing_mid_run_is_dropped_and_training_goes_on(demo_root, tmp_path, monkeypatch, caplog):
    """The store filling up mid-run: one line, the tracker dropped, the run trains to its end and writes its
    checkpoints (no iteration lost)."""
    import logging

    pytest.importorskip("mlflow", reason="MLflow comes with the mlflow extra")
    from segattn.engine.loggers import MLflowWriter
    from segattn.engine.trainer import Trainer

    calls = []

    def full(self, tag, value, step):
        calls.append(step)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MLflowWriter, "add_scalar", full)
    cfg = tiny_config(demo_root, tmp_path, max_iters=3, val_interval=3, log_interval=1)
    cfg.train.loggers = ["tensorboard", "mlflow"]
    trainer = Trainer(cfg, progress=False)
    with caplog.at_level(logging.ERROR, logger="segattn"):
        trainer.fit()
    assert calls == [1]  # dropped at its first failure, never called again
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["train.loggers: mlflow failed (OSError: [Errno 28] No space left on device); training goes "
                      "on without it"]
    assert torch.load(tmp_path / "t" / "last.pth", weights_only=False)["iteration"] == 3
