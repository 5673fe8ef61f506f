"""Adding a head is one file and a config: a toy head registered here is trained from a YAML file."""
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from helpers import tiny_config
from segattn.analysis.attention_maps import attention_maps
from segattn.config import load_config
from segattn.engine.trainer import Trainer
from segattn.models import HEADS, build_model
from segattn.models.heads.base import DecodeHead
from segattn.models.layers import ConvNormReLU


@HEADS.register("toy_gate")
class ToyGateHead(DecodeHead):
    """A 3x3 conv, then a learnt sigmoid gate per pixel: a stand-in for a user's new head."""

    def __init__(self, in_channels, channels, num_classes, gate_bias: float = 0.0, dropout=0.1, norm=nn.BatchNorm2d):
        super().__init__(in_channels, channels, num_classes, dropout, norm)
        self.conv = ConvNormReLU(in_channels, channels, norm=norm)
        self.gate = nn.Conv2d(channels, 1, 1)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x):
        out = self.conv(x)
        return {"main": self.cls_seg(out * torch.sigmoid(self.gate(out)))}

    def attention_maps(self, x):
        gate = torch.sigmoid(self.gate(self.conv(x))).flatten(1)  # (B, HW): one weight per position
        return {"non_local": (gate / gate.sum(-1, keepdim=True))[:, None, :].expand(-1, gate.shape[1], -1)}


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
    (_, maps), = attention_maps(model, torch.randn(1, 3, 32, 32), [(1, 1)])["maps"]
    torch.testing.assert_close(maps["nonlocal"].sum(), torch.tensor(1.0))


def test_options_are_listed_from_the_signature():
    assert HEADS.options("ccnet") == {"recurrence": 2}
    assert HEADS.options("nonlocal") == {"reduction": 2, "use_scale": True, "block_norm": False}
    assert "toy_gate" in HEADS.names() and HEADS.options("toy_gate") == {"gate_bias": 0.0}
