import glob
import os

import pytest
import torch

from helpers import ROOT
from segattn import build_model
from segattn.config import load_config
from segattn.errors import ConfigError
from segattn.models import HEADS
from segattn.models.encoders import Encoder
from segattn.registry import parse_spec

TINY = {"channels": 16, "num_classes": 5, "aux": {"channels": 8}, "encoder": {"name": "resnet18", "weights": None}}


def test_unknown_head_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"model.head.type: unknown head 'pspnet'; valid: ") as err:
        build_model({"head": "pspnet"})
    listed = str(err.value).split("valid: ", 1)[1].split(", ")
    assert sorted(listed) == sorted(HEADS.names())  # every registered head, whatever the order


def test_typo_suggests_closest_key():
    with pytest.raises(ConfigError, match="head 'ccnet' has no option 'recurence'; did you mean 'recurrence'"):
        build_model({"head": {"type": "ccnet", "recurence": 1}})
    with pytest.raises(ConfigError, match="'model.encoder.outputstride'.*'model.encoder.output_stride'"):
        build_model({"encoder": {"outputstride": 8}})
    with pytest.raises(ConfigError, match="unknown key 'model.chanels'; did you mean 'model.channels'"):
        build_model({"chanels": 8})


def test_bad_values():
    with pytest.raises(ConfigError, match="model.head: recurrence must be >= 1, got 0"):
        build_model({"head": {"type": "ccnet", "recurrence": 0}, **TINY})
    with pytest.raises(ConfigError, match="model.head.recurrence: expected a number"):
        build_model({"head": {"type": "ccnet", "recurrence": "two"}, **TINY})
    with pytest.raises(ConfigError, match="model.num_classes"):
        build_model({"num_classes": "many"})
    with pytest.raises(ConfigError, match="output_stride must be one of 8, 16, 32"):
        build_model({"encoder": {"output_stride": 4}})
    with pytest.raises(ConfigError, match="model.head: a mapping needs a 'type' key"):
        parse_spec({"recurrence": 2}, "model.head")
    with pytest.raises(ConfigError, match="model.head: expected a name or a mapping"):
        parse_spec(3, "model.head")


def test_each_head_takes_its_own_options():
    model = build_model({"head": {"type": "nonlocal", "reduction": 4, "use_scale": False, "block_norm": True}, **TINY})
    assert model.head.attention.inter_channels == 4 and not model.head.attention.use_scale
    assert isinstance(model.head.attention.conv_out[1], torch.nn.BatchNorm2d)  # block_norm reached the block
    model = build_model({"head": {"type": "danet", "loss_weights": {"pam": 0.5}}, **TINY})
    assert model.head.loss_weights == {"pam": 0.5, "cam": 1.0}
    with pytest.raises(ConfigError, match="head 'fcn' has no option 'recurrence'"):
        build_model({"head": {"type": "fcn", "recurrence": 2}, **TINY})


def test_unknown_encoder():
    with pytest.raises(ConfigError, match="unknown encoder 'resnet10'.*resnet101"):
        build_model({"encoder": {"name": "resnet10", "weights": None}})


PAPER_CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.yaml"))
                       if not os.path.basename(p).startswith("base"))


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=os.path.basename)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    head = os.path.basename(path)[:-5]
    assert head in HEADS and cfg.model.head.type == head
    assert cfg.model.encoder.name == "tu-resnet101c" and cfg.model.encoder.output_stride == 8  # V1c, as mmseg
    assert cfg.model.num_classes == 19 and cfg.data.crop_size == [769, 769]


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
