import pytest
import torch

from segattn import build_model
from segattn.config import ConfigError, load_config
from segattn.models.encoders import Encoder


def test_unknown_head_lists_valid_ones():
    with pytest.raises(ConfigError, match="model.head must be one of fcn, danet, ccnet, nonlocal"):
        build_model({"head": "pspnet"})


def test_typo_suggests_closest_key():
    with pytest.raises(ConfigError, match="unknown key 'model.recurence'; did you mean 'model.recurrence'"):
        build_model({"recurence": 1})
    with pytest.raises(ConfigError, match="'model.encoder.outputstride'.*'model.encoder.output_stride'"):
        build_model({"encoder": {"outputstride": 8}})


def test_bad_values():
    with pytest.raises(ConfigError, match="model.recurrence must be >= 1"):
        build_model({"recurrence": 0, "encoder": {"weights": None}})
    with pytest.raises(ConfigError, match="model.num_classes"):
        build_model({"num_classes": "many"})
    with pytest.raises(ConfigError, match="output_stride must be 8, 16 or 32"):
        build_model({"encoder": {"output_stride": 4}})


def test_unknown_encoder():
    with pytest.raises(ValueError, match="unknown encoder 'resnet10'.*resnet101"):
        build_model({"encoder": {"name": "resnet10", "weights": None}})


@pytest.mark.parametrize("head", ["fcn", "danet", "ccnet", "nonlocal"])
def test_shipped_configs_validate(head):
    cfg = load_config(f"configs/{head}.yaml")
    assert cfg.model.head == head
    assert cfg.model.encoder.name == "resnet101" and cfg.model.encoder.output_stride == 8
    assert cfg.model.num_classes == 19


def test_local_weights_loaded_and_mismatch_reported(tmp_path, caplog):
    src = Encoder("resnet18", None, 8)
    state = src.body.state_dict()
    state.pop("fc.weight", None)
    dropped = next(iter(state))
    state.pop(dropped)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "enc.pth"
    torch.save(state, path)
    enc = Encoder("resnet18", str(path), 8)
    torch.testing.assert_close(enc.body.layer4[0].conv1.weight, src.body.layer4[0].conv1.weight)
    assert dropped in caplog.text and "extra.weight" in caplog.text


def test_missing_weights_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.encoder.weights: no such file"):
        Encoder("resnet18", str(tmp_path / "nope.pth"), 8)


def test_syncbn_is_plain_bn_until_ddp_converts_it():
    model = build_model({"norm": "syncbn", "channels": 8, "encoder": {"name": "resnet18", "weights": None}})
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # what the trainer does under DDP
    assert isinstance(model.encoder.body.bn1, torch.nn.SyncBatchNorm)
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())


def test_gn_replaces_every_batchnorm():
    model = build_model({"norm": "gn", "channels": 32, "encoder": {"name": "resnet18", "weights": None}})
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert isinstance(model.encoder.body.bn1, torch.nn.GroupNorm) and model.encoder.body.bn1.num_groups == 32
