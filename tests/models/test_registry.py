"""Adding a head is one file and a config: the toy head of tests/toys.py is trained from a YAML file."""
import torch
import yaml
from omegaconf import OmegaConf

from helpers import tiny_config
from toys import ToyGateHead
from segattn.analysis.attention_maps import attention_maps
from segattn.config import load_config
from segattn.engine.trainer import Trainer
from segattn.models import HEADS, build_model


def test_toy_head_from_one_class_and_a_config(demo_root, tmp_path):
    base = tiny_config(demo_root, tmp_path, max_iters=2, val_interval=2)
    OmegaConf.save(base, tmp_path / "base.yaml")
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump({"_base_": "base.yaml",
                                                        "model": {"head": {"type": "toy_gate", "gate_bias": 2.0}}}))
    cfg = load_config(str(tmp_path / "toy.yaml"))
    trainer = Trainer(cfg, progress=False)
    assert isinstance(trainer.model.head, ToyGateHead)
    assert float(trainer.model.head.gate.bias.detach()) == 2.0
    metrics = trainer.fit()
    assert 0.0 <= metrics["mIoU"] <= 1.0 and (tmp_path / "t" / "last.pth").exists()
    # the analysis tools find its maps through the one method, not through attribute names
    model = build_model({"head": {"type": "toy_gate"}, "channels": 8, "encoder": {"name": "resnet18", "weights": None}})
    (_, one), (_, other) = attention_maps(model, torch.randn(1, 3, 32, 32), [(1, 1), (2, 3)])["maps"]
    assert set(one) == {"context"}  # its own kind, not drawn as another head's
    torch.testing.assert_close(one["context"].sum(), torch.tensor(1.0))
    torch.testing.assert_close(one["context"], other["context"])  # the same map whatever the query


def test_options_are_listed_from_the_signature():
    assert HEADS.options("ccnet") == {"recurrence": 2}
    assert HEADS.options("nonlocal") == {"reduction": 2, "use_scale": True, "block_norm": False}
    assert "toy_gate" in HEADS.names() and HEADS.options("toy_gate") == {"gate_bias": 0.0}


def test_a_module_run_as_main_and_imported_by_name_registers_once():
    """``python -m`` runs a registering module as __main__; if its package's copy is imported later too, the
    package's class takes the name (and in the other order it keeps it); a real second class is still an error."""
    import pytest

    from segattn.registry import Registry

    def define(module):
        return type("Thing", (), {"__module__": module})

    table = Registry("thing")
    as_main = table.register("t")(define("__main__"))
    assert table["t"] is as_main
    package = table.register("t")(define("pkg.thing"))
    assert table["t"] is package
    table.register("t")(define("__main__"))
    assert table["t"] is package
    with pytest.raises(AssertionError, match="registered twice"):
        table.register("t")(define("pkg.other"))
