"""segattn.configure: a config as the tools and the Python API take it, checked once per path, and compared."""
from omegaconf import OmegaConf

from helpers import tiny_config
from segattn.configure import config_changes, describe_changes, load_tool_config, with_defaults
from segattn.data.registry import DATASETS
from segattn.models import HEADS, build_model


def test_each_section_is_checked_once_on_a_tools_path(demo_root, tmp_path, monkeypatch):
    """load_tool_config (what every tool does first), then the builder and the trainer's data check: the head's
    options and the data section are checked once, not again by each caller."""
    from segattn.engine.trainer import Trainer

    calls = {"head": 0, "data": 0}
    check, data_check = HEADS.check, DATASETS["cityscapes"].check_config.__func__

    def counted_check(spec, key):
        calls["head"] += key == "model.head"
        return check(spec, key)

    def counted_data_check(cls, data_cfg, num_classes):
        calls["data"] += 1
        return data_check(cls, data_cfg, num_classes)

    monkeypatch.setattr(HEADS, "check", counted_check)
    monkeypatch.setattr(DATASETS["cityscapes"], "check_config", classmethod(counted_data_check))
    cfg = tiny_config(demo_root, tmp_path, max_iters=1)
    cfg.model.dropout = 0.0123  # contents no other test checked in this process
    cfg.data.root = str(demo_root)
    cfg.data.max_bad_samples = 7
    OmegaConf.save(cfg, tmp_path / "c.yaml")
    cfg = load_tool_config(str(tmp_path / "c.yaml"))
    assert calls == {"head": 1, "data": 1}
    Trainer(cfg, progress=False).close()
    build_model(cfg)
    assert calls == {"head": 1, "data": 1}
    cfg.model.head = {"type": "ccnet", "recurrence": 1}  # a changed section is checked anew
    build_model(cfg)
    assert calls == {"head": 2, "data": 1}


def test_config_changes_name_each_differing_key():
    saved = with_defaults({"model": {"head": {"type": "ccnet"}}, "train": {"lr": 0.01}})
    new = with_defaults({"model": {"head": {"type": "ccnet", "recurrence": 1}}, "train": {"lr": 0.02}})
    changes = config_changes(saved, new)
    assert changes == {"model.head.recurrence": ("(absent)", 1), "train.lr": (0.01, 0.02)}
    assert describe_changes(changes) == "model.head.recurrence '(absent)' -> 1, train.lr 0.01 -> 0.02"


def test_a_typed_node_by_name_and_as_a_mapping_is_no_change():
    """A config built in memory holds ``context_block: none``; the same config read back from its YAML holds
    ``{type: none}``: one choice, not a change (a resume with the run's own config.yaml relies on it)."""
    saved = with_defaults({"model": {"context_block": "none", "encoder": {"block_attention": "se"}}})
    new = with_defaults({"model": {"context_block": {"type": "none"}, "encoder": {"block_attention": {"type": "se"}}}})
    assert config_changes(saved, new) == {}
    assert config_changes(saved["model"], new["model"], "model.") == {}
    other = with_defaults({"model": {"context_block": {"type": "se"}}})
    assert config_changes(saved, other)["model.context_block.type"] == ("none", "se")
