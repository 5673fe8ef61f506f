"""mmsegmentation's own models (the real package, run on CPU) against their conversion into segattn."""
import glob
import os

import pytest
import torch

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")

from segattn.engine.inference import slide_logits  # noqa: E402
from segattn.engine.predictor import load_model  # noqa: E402
from segattn.interop.convert import convert_checkpoint  # noqa: E402
from segattn.interop.mmseg_peer import build_mmseg_model, mmseg_logits, randomize, save_like_mmseg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "mmseg", "*_cityscapes.yaml")))
CPU = torch.device("cpu")


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


def convert(name, tmp_path, seed=1):
    """mmseg's model with random weights, saved as mmseg saves it, converted by our tool's code."""
    theirs = randomize(build_mmseg_model(name), seed)
    src, dst = tmp_path / "mmseg.pth", tmp_path / "ours.pth"
    save_like_mmseg(theirs, str(src))
    cfg = convert_checkpoint("mmseg", str(src), os.path.join(ROOT, "configs", "mmseg", f"{name}.yaml"), str(dst),
                             progress=False)
    ours, _ = load_model(cfg, str(dst), CPU)
    src.unlink()  # a ResNet-101 pair is 0.6 GB: keep the disk clear over the 16 configs
    dst.unlink()
    return theirs.eval(), ours


def test_every_released_cityscapes_checkpoint_has_a_config():
    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    assert names == {f"{h}_r{d}-d8_769x769_{i}k_cityscapes" for h in ("ccnet", "danet", "nonlocal", "fcn")
                     for d in (50, 101) for i in (40, 80)}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p)[:-5])
def test_converted_model_gives_mmseg_logits(path, tmp_path):
    name = os.path.basename(path)[:-5]
    theirs, ours = convert(name, tmp_path)
    x = torch.randn(1, 3, 69, 83)  # neither side a multiple of 8
    expected = mmseg_logits(theirs, x)
    with torch.no_grad():
        got = ours(x)["main"]
        assert got.shape == expected.shape == (1, 19, 69, 83)
        assert relative(got, expected) <= 1e-4
        # the auxiliary head on layer3 too (training uses it; encode_decode does not)
        aux_theirs = theirs.auxiliary_head(theirs.extract_feat(x))
        aux_ours = ours.aux_head(ours.features(x)[0])["main"]
        assert relative(aux_ours, aux_theirs) <= 1e-4
        # and the attention counts: without it (gammas 0) the logits are not mmseg's
        gammas = [p for n, p in ours.named_parameters() if n.endswith("gamma")]
        assert bool(gammas) == (not name.startswith(("fcn", "nonlocal")))
        for p in gammas:
            p.zero_()
        if gammas:
            assert relative(ours(x)["main"], expected) > 1e-3


def test_sliding_window_evaluation_equals_mmseg(tmp_path):
    theirs, ours = convert("ccnet_r50-d8_769x769_40k_cityscapes", tmp_path)
    from mmengine import ConfigDict

    theirs.test_cfg = ConfigDict(mode="slide", crop_size=(40, 48), stride=(27, 31))
    x = torch.randn(1, 3, 83, 101)
    with torch.no_grad():
        expected = theirs.slide_inference(x, [dict(img_shape=(83, 101), ori_shape=(83, 101))])
        got = slide_logits(ours, x, (40, 48), (27, 31))
    assert relative(got, expected) <= 1e-4


def test_encoder_loads_mmcv_resnet_v1c_imagenet_weights(tmp_path):
    """mmseg's ImageNet file for ResNetV1c (stem.*, layer*, fc.*) fits tu-resnet50c as it is."""
    from mmseg.models.backbones import ResNetV1c

    from segattn.models.encoders import Encoder

    theirs = randomize(ResNetV1c(depth=50, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), contract_dilation=True))
    state = {**theirs.state_dict(), "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "resnet50_v1c.pth")
    ours = Encoder("tu-resnet50c", str(tmp_path / "resnet50_v1c.pth"), 8).eval()
    x = torch.randn(1, 3, 45, 61)
    theirs.eval()  # mmcv's ResNet.train() returns None: not chained
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert relative(got[0], expected[2]) == 0 and relative(got[1], expected[3]) == 0
