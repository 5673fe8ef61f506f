"""Config files: inheritance through _base_, typed nodes, overrides, and the first format still loading."""
import logging

import pytest
import yaml

from segattn.config import load_config
from segattn.errors import ConfigError


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_base_then_the_lines_that_differ(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"head": {"type": "nonlocal", "reduction": 4}, "channels": 64},
                                   "train": {"lr": 0.5, "experiment": "base"}})
    child = write(tmp_path / "child.yaml", {"_base_": "base.yaml", "model": {"head": {"type": "ccnet"}},
                                            "train": {"experiment": "child"}})
    cfg = load_config(child)
    # a new head type replaces the base's head options instead of inheriting reduction
    assert dict(cfg.model.head) == {"type": "ccnet"}
    assert cfg.model.channels == 64 and cfg.train.lr == 0.5 and cfg.train.experiment == "child"
    same = write(tmp_path / "same.yaml", {"_base_": "base.yaml", "model": {"head": {"use_scale": False}}})
    assert dict(load_config(same).model.head) == {"type": "nonlocal", "reduction": 4, "use_scale": False}


def test_overrides_on_typed_nodes(tmp_path):
    cfg = load_config("configs/demo/ccnet.yaml", ["model.head.recurrence=1"])
    assert dict(cfg.model.head) == {"type": "ccnet", "recurrence": 1}
    cfg = load_config("configs/demo/ccnet.yaml", ["model.head.type=danet"])
    assert dict(cfg.model.head) == {"type": "danet"}
    cfg = load_config("configs/demo/fcn.yaml", ["model.head=nonlocal"])
    assert dict(cfg.model.head) == {"type": "nonlocal"}


def test_base_errors_are_one_line(tmp_path):
    missing = write(tmp_path / "a.yaml", {"_base_": "nope.yaml"})
    with pytest.raises(ConfigError, match=r"a.yaml: _base_ 'nope.yaml' not found"):
        load_config(missing)
    write(tmp_path / "x.yaml", {"_base_": "y.yaml"})
    cyc = write(tmp_path / "y.yaml", {"_base_": "x.yaml"})
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(cyc)
    bad = write(tmp_path / "b.yaml", {"_base_": "base.yaml", "model": {"chanels": 3}})
    write(tmp_path / "base.yaml", {})
    with pytest.raises(ConfigError, match="b.yaml: unknown key 'model.chanels'; did you mean 'model.channels'"):
        load_config(bad)


def test_first_format_loads_with_a_hint(tmp_path, caplog):
    old = write(tmp_path / "old.yaml", {"model": {"head": "nonlocal", "reduction": 4, "use_scale": False,
                                                  "recurrence": 2}})
    with caplog.at_level(logging.WARNING):
        cfg = load_config(old)
    assert dict(cfg.model.head) == {"type": "nonlocal", "reduction": 4, "use_scale": False}
    assert "write model.head: {type: nonlocal, reduction: 4, use_scale: False} instead" in caplog.text
    danet = write(tmp_path / "danet.yaml", {"model": {"head": "danet", "extra_loss_weights": {"pam": 0.5,
                                                                                                 "cam": 1.0}}})
    assert dict(load_config(danet).model.head.loss_weights) == {"pam": 0.5, "cam": 1.0}


def test_shipped_configs_are_short_overrides_of_one_base_and_load():
    """Every shipped config is its folder's base plus the lines that differ (one level), and loads."""
    import glob
    import os
    import re

    from segattn.configure import load_tool_config

    paths = [p for p in glob.glob("configs/**/*.yaml", recursive=True) if not os.path.basename(p).startswith("base")]
    assert len(paths) >= 4 + 10 + 16 + 48
    for path in paths:
        text = open(path).read()
        assert "_base_:" in text and len(text.splitlines()) <= 16, path
        base = os.path.join(os.path.dirname(path), text.split("_base_:")[1].split()[0])
        assert not re.search(r"^_base_:", open(base).read(), re.M), f"{path}: its base inherits again"
        load_tool_config(path)


def test_amp_off_survives_yaml_booleans(tmp_path):
    """`off` is false to YAML 1.1; `train.amp=off` and `amp: off` must still mean float32."""
    assert load_config("configs/demo/ccnet.yaml", ["train.amp=off"]).train.amp == "off"
    path = write(tmp_path / "c.yaml", {"_base_": "x.yaml"})
    (tmp_path / "x.yaml").write_text("train:\n  amp: off\n")
    assert load_config(path).train.amp == "off"


@pytest.mark.parametrize("override, key", [
    ("data.pad=grey", "data.pad"), ("data.photometric=strong", "data.photometric"),
    ("data.cat_max_ratio=0", "data.cat_max_ratio"), ("data.train_scale=[512]", "data.train_scale"),
    ("train.loss_average=some", "train.loss_average"), ("train.min_lr=1", "train.min_lr")])
def test_recipe_options_are_checked(override, key, tmp_path):
    with pytest.raises(ConfigError, match=key):
        load_config("configs/demo/fcn.yaml", [override])


def test_loss_average_all_is_for_cross_entropy(tmp_path):
    with pytest.raises(ConfigError, match="train.loss_average.*ohem"):
        load_config("configs/demo/fcn.yaml", ["train.loss=ohem", "train.loss_average=all"])


def test_an_unknown_optimizer_is_one_line_naming_the_choices(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {optimizer: adam}\n")
    with pytest.raises(ConfigError, match=r"train.optimizer.*sgd or adamw, got 'adam'"):
        load_config(str(path))


def test_eval_compile_reads_yaml_booleans(tmp_path):
    """YAML reads a bare ``on`` / ``off`` as a boolean: both spellings, in a file and on the command line, mean the
    mode; anything else is one line naming the key."""
    path = tmp_path / "c.yaml"
    for written, mode in (("on", "on"), ("off", "off"), ("auto", "auto"), ("'on'", "on"), ("true", "on")):
        path.write_text(f"eval:\n  compile: {written}\n")
        assert load_config(str(path)).eval.compile == mode
        assert load_config(str(path), [f"eval.compile={mode}"]).eval.compile == mode
    with pytest.raises(ConfigError, match=r"eval.compile must be off, on or auto, got 'fast'$"):
        load_config(str(path), ["eval.compile=fast"])
