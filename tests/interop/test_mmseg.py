"""mmsegmentation's own models (the real package, run on CPU) against their conversion into segattn."""
import glob
import os
import re

import pytest
import torch
from helpers import local_site, spatial_kernel

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")

from segattn.engine.inference import slide_logits  # noqa: E402
from segattn.engine.predictor import load_model  # noqa: E402
from segattn.configure import load_tool_config  # noqa: E402
from segattn.interop.convert import convert_checkpoint  # noqa: E402
from segattn.interop.mmseg_peer import (build_mmseg_model, decode_heads, mmseg_heads, mmseg_logits,  # noqa: E402
                                        randomize, save_like_mmseg)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "mmseg", "*.yaml"))
                 if not os.path.basename(p).startswith("base"))
CPU = torch.device("cpu")


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


def convert_with_tool_config(fmt, source, config_path, output, progress=False):
    """What tools/convert_checkpoint.py does: load the config as the tools do, then convert."""
    return convert_checkpoint(fmt, source, load_tool_config(config_path), output, config_path, progress)


def convert(name, tmp_path, seed=1):
    """mmseg's model with random weights, saved as mmseg saves it, converted by our tool's code. mmseg's
    init_weights draws from the global generator: seeded here, the weights (and so every error bound on them)
    do not depend on which tests ran before in the process."""
    torch.manual_seed(seed)
    theirs = randomize(build_mmseg_model(name), seed)
    src, dst = tmp_path / "mmseg.pth", tmp_path / "ours.pth"
    save_like_mmseg(theirs, str(src))
    cfg = convert_with_tool_config("mmseg", str(src), os.path.join(ROOT, "configs", "mmseg", f"{name}.yaml"), str(dst),
                             progress=False)
    ours, _ = load_model(cfg, str(dst), CPU)
    src.unlink()  # a ResNet-101 pair is 0.6 GB: keep the disk clear over the 16 configs
    dst.unlink()
    return theirs.eval(), ours


# mmsegmentation 1.2.2's metafile names that are not their config files' names
MMSEG_METAFILE_SLIPS = {"eemanet_r50-d8_4xb2-80k_cityscapes-512x1024": "emanet_r50-d8_4xb2-80k_cityscapes-512x1024"}


def test_every_released_checkpoint_of_our_heads_has_a_config():
    """Every ResNet-50/101 D8 model that mmseg 1.2.2's model zoo releases for our heads (its metafiles: the models
    with weights) on Cityscapes (769x769 and 512x1024 crops), ADE20K and VOC12aug (512x512) has our config; a
    head's zoo has the datasets and schedules it has (EncNet's VOC configs, for one, have no released model;
    OCRNet's ResNet models are R-101 512x1024 only). A zoo with two batches for one schedule (OCRNet's 4xb2 and
    8xb2) names the batch in every config (mmseg 0.x's _b8_, _b16_)."""
    import yaml

    from segattn.interop.mmseg_peer import mmseg_config_path

    names = {os.path.basename(p)[:-5] for p in CONFIGS}
    released = re.compile(r"^(\w+?)_r(50|101)-d8_(\d)xb(\d)-(\d+)k_(cityscapes-(?:769x769|512x1024)|ade20k-512x512|"
                          r"voc12aug-512x512)$")
    expected = set()
    for head in mmseg_heads():
        folder = os.path.dirname(mmseg_config_path(f"{head}_r50-d8_769x769_80k_cityscapes"))
        with open(os.path.join(folder, "metafile.yaml")) as f:
            models = [released.match(MMSEG_METAFILE_SLIPS.get(m["Name"], m["Name"]))
                      for m in yaml.safe_load(f)["Models"] if m.get("Weights")]
        chosen = [m.groups()[1:5] + tuple(m[6].split("-")) for m in models if m and m[1] == head]
        assert chosen, head  # the metafile named released models of every head
        batches = {}
        for depth, gpus, per_gpu, iters, dataset, crop in chosen:
            batches.setdefault((depth, iters, dataset, crop), set()).add(int(gpus) * int(per_gpu))
        named = any(len(b) > 1 for b in batches.values())
        expected |= {f"{head}_r{depth}-d8_{crop}_{iters}k_{f'b{int(gpus) * int(per_gpu)}_' if named else ''}{dataset}"
                     for depth, gpus, per_gpu, iters, dataset, crop in chosen}
        for name in MMSEG_METAFILE_SLIPS.values():  # the config file of a misnamed model is there
            assert not name.startswith(f"{head}_") or os.path.isfile(os.path.join(folder, name + ".py"))
    assert names == expected


def model_groups():
    """Configs by model: the 40k and 80k (20k/40k, 80k/160k) files of a head and depth differ in schedule only
    (OCRNet's b8 and b16 in batch and schedule)."""
    import re

    groups = {}
    for path in CONFIGS:
        name = os.path.basename(path)[:-5]
        groups.setdefault(re.sub(r"_\d+k_(b\d+_)?", "_", name), []).append(name)
    return groups


# the ResNet-101 model run in full: its encoder's conversion (23 blocks in layer3) stands for every depth-101 group
DEPTH_101_RUN = "danet_r101-d8_769x769_cityscapes"


def _model_sections(name):
    from mmengine import Config

    from segattn.config import load_config
    from segattn.interop.mmseg_peer import mmseg_config_path

    return load_config(config(name)).model, Config.fromfile(mmseg_config_path(name)).model.to_dict()


@pytest.mark.parametrize("group", sorted(model_groups()))
def test_converted_model_gives_mmseg_logits(group, tmp_path):
    """For every config: the model equals mmseg's. One of each group is run; the others build the same model
    on both sides (our model section and mmseg's model config, compared whole), so the same proof covers them.
    Of the ResNet-101 groups one is run; each other one must be its ResNet-50 group's model with the encoder's
    depth alone changed, on both sides: the R-50 run proves its head, the R-101 run the deeper encoder. A head with
    no R-50 configs (OCRNet) is run at R-101."""
    name, *siblings = model_groups()[group]
    our_section, their_section = _model_sections(name)
    for other in siblings:
        assert _model_sections(other) == (our_section, their_section), other
    if "_r101-" in group and group != DEPTH_101_RUN and group.replace("_r101-", "_r50-") in model_groups():
        our50, their50 = _model_sections(model_groups()[group.replace("_r101-", "_r50-")][0])
        assert our_section.encoder.name == "tu-resnet101c" and our50.encoder.name == "tu-resnet50c"
        our50.encoder.name = "tu-resnet101c"
        assert our_section == our50
        assert their_section["backbone"]["depth"] == 101
        assert their_section["pretrained"] == "open-mmlab://resnet101_v1c"
        their50["backbone"]["depth"], their50["pretrained"] = 101, "open-mmlab://resnet101_v1c"
        assert their_section == their50
        return
    theirs, ours = convert(name, tmp_path)
    x = torch.randn(1, 3, 69, 83)  # neither side a multiple of 8
    expected = mmseg_logits(theirs, x)
    with torch.no_grad():
        # as the tools load it (channels-last): the convolutions sum in another order than mmseg's NCHW ones, and
        # these random-weight networks can amplify that (3.8e-4 measured for one input of ccnet r50 voc12aug)
        assert spatial_kernel(ours).is_contiguous(memory_format=torch.channels_last)
        assert relative(ours(x)["main"], expected) <= 2e-3
        ours.to(memory_format=torch.contiguous_format)  # mmseg's layout: the same sums, so a strict bound
        got = ours(x)["main"]
        assert got.shape == expected.shape == (1, decode_heads(theirs)[-1].num_classes, 69, 83)
        assert relative(got, expected) <= 1e-4
        # the auxiliary head on layer3 too (training uses it; encode_decode does not), where there is one
        assert (ours.aux_head is None) == (not theirs.with_auxiliary_head)
        if ours.aux_head is not None:
            aux_theirs = theirs.auxiliary_head(theirs.extract_feat(x))
            aux_ours = ours.aux_head(ours.features(x)[0])["main"]
            assert relative(aux_ours, aux_theirs) <= 1e-4
        # and the attention counts: without it (gammas 0, where a head's blocks have them) the logits are not mmseg's
        gammas = [p for n, p in ours.named_parameters() if n.endswith("gamma")]
        for p in gammas:
            p.zero_()
        if gammas:
            assert relative(ours(x)["main"], expected) > 1e-3


def test_sliding_window_evaluation_equals_mmseg(tmp_path):
    theirs, ours = convert("ccnet_r50-d8_769x769_40k_cityscapes", tmp_path)
    ours.to(memory_format=torch.contiguous_format)  # mmseg's layout, the same sums (channels-last: the test above)
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


# -- bad input: one line each, nothing written --------------------------------------------------------------------
FCN = "fcn_r50-d8_769x769_40k_cityscapes"


@pytest.fixture(scope="module")
def fcn_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("mmseg") / "fcn.pth"
    save_like_mmseg(randomize(build_mmseg_model(FCN)), str(path))
    return path


def config(name):
    return os.path.join(ROOT, "configs", "mmseg", f"{name}.yaml")


def refused(src, name, tmp_path, match):
    from segattn.errors import SegattnError

    out = tmp_path / "out.pth"
    with pytest.raises(SegattnError, match=match) as err:
        convert_with_tool_config("mmseg", str(src), config(name), str(out), progress=False)
    assert "\n" not in str(err.value) and str(src) in str(err.value)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_another_architecture_names_the_keys(fcn_checkpoint, tmp_path):
    refused(fcn_checkpoint, "ccnet_r50-d8_769x769_40k_cityscapes", tmp_path,
            r"head is FCNHead \(fcn\).*of ours unfilled, e\.g\. head\.attention\.")
    refused(fcn_checkpoint, "fcn_r101-d8_769x769_40k_cityscapes", tmp_path,  # another depth
            r"of ours unfilled, e\.g\. encoder\.body\.model\.layer3\.6\.")


def test_another_class_count_names_the_shapes(tmp_path):
    src = tmp_path / "ade.pth"
    save_like_mmseg(randomize(build_mmseg_model(FCN, num_classes=150)), str(src))
    refused(src, FCN, tmp_path, r"shapes differ.*decode_head\.conv_seg\.weight \(150, 512, 1, 1\) vs "
                                r"head\.cls_seg\.1\.weight \(19, 512, 1, 1\)")


def test_truncated_file_and_not_a_checkpoint(fcn_checkpoint, tmp_path):
    data = fcn_checkpoint.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.pth", FCN, tmp_path, "not a readable checkpoint")
    (tmp_path / "notes.pth").write_text("not a checkpoint\n")
    refused(tmp_path / "notes.pth", FCN, tmp_path, "not a readable checkpoint")
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "segattn.pth")  # a checkpoint, not mmseg's
    refused(tmp_path / "segattn.pth", FCN, tmp_path, "not an mmsegmentation checkpoint")
    refused(tmp_path / "absent.pth", FCN, tmp_path, "no such checkpoint file")


def test_address_download_and_unreachable_address(fcn_checkpoint, tmp_path):
    import socket

    with local_site(fcn_checkpoint.parent, tmp_path / "hub") as site:
        url = f"{site}/fcn.pth"
        convert_with_tool_config("mmseg", url, config(FCN), str(tmp_path / "ours.pth"), progress=False)
        assert (tmp_path / "hub" / "checkpoints" / "fcn.pth").read_bytes() == fcn_checkpoint.read_bytes()
        assert torch.load(tmp_path / "ours.pth", weights_only=True)["source"]["address"] == url
        (tmp_path / "ours.pth").unlink()
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        refused(f"http://127.0.0.1:{closed}/x.pth", FCN, tmp_path, "could not download")


def test_tool_prints_one_line_and_exits_2(fcn_checkpoint, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out.pth"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"), "mmseg",
                           str(fcn_checkpoint), "--config", config("danet_r50-d8_769x769_40k_cityscapes"),
                           "--output", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 2 and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {fcn_checkpoint}: does not fit the model of "), lines


def test_fine_tuning_starts_from_the_converted_weights(fcn_checkpoint, tmp_path, demo_root):
    """``model.init_from=`` a converted checkpoint: the trainer's model holds its weights before step 1."""
    from segattn.config import load_config
    from segattn.engine.trainer import Trainer

    convert_with_tool_config("mmseg", str(fcn_checkpoint), config(FCN), str(tmp_path / "ours.pth"), progress=False)
    cfg = load_config(config(FCN), [f"model.init_from={tmp_path / 'ours.pth'}", f"data.root={demo_root}",
                                    "data.workers=0", "train.batch_size=2", f"train.out_dir={tmp_path}",
                                    "train.device=cpu", "model.encoder.weights=null", "model.norm=bn"])
    trainer = Trainer(cfg, progress=False)
    expected = torch.load(tmp_path / "ours.pth", weights_only=True)["model"]
    got = trainer.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_readme_commands_convert_evaluate_and_infer(tmp_path, demo_root):
    """The commands of docs/models.md on a fresh checkout, on the demo data and a folder."""
    import shutil
    import subprocess
    import sys

    def run(*args):
        proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout

    name = "ccnet_r50-d8_769x769_40k_cityscapes"
    src, ours = tmp_path / "mmseg.pth", tmp_path / "ccnet.pth"
    run("-m", "segattn.interop.mmseg_peer", name, src)
    run("tools/convert_checkpoint.py", "mmseg", src, "--config", config(name), "--output", ours)
    out = run("tools/eval.py", config(name), f"data.root={demo_root}", "data.workers=0", "data.test_resize=null",
              "--checkpoint", ours, "--no-progress")
    assert "mIoU" in out and "| road |" in out
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[:2]:
        shutil.copy(path, images)
    out = run("tools/infer.py", config(name), "data.test_resize=null", "--checkpoint", ours, "--input", images,
              "--output", tmp_path / "pred", "--no-progress")
    assert "2 images segmented" in out and len(list((tmp_path / "pred").glob("*_pred.png"))) == 2


def test_evaluation_with_test_resize_equals_mmseg_test_pipeline(tmp_path, demo_root):
    """mmseg's own test pipeline (load, keep-ratio Resize on the uint8 image, its preprocessor, sliding windows,
    logits resized back to the image) against ours: ``data.test_resize`` and ``tools/eval.py``'s inference."""
    from mmengine import ConfigDict
    from mmengine.dataset import Compose

    from segattn.data.cityscapes import CityscapesDataset
    from segattn.data.transforms import eval_preset
    from segattn.engine.inference import scale_logits

    # FCN: the pipeline is under test here, and no attention op's float rounding (held to mmcv's elsewhere)
    theirs, ours = convert("fcn_r50-d8_769x769_40k_cityscapes", tmp_path)
    ours.to(memory_format=torch.contiguous_format)  # mmseg's layout, the same sums
    scale, crop, stride = (700, 350), (200, 200), (150, 150)  # 256x512 demo images -> 350x700
    theirs.test_cfg = ConfigDict(mode="slide", crop_size=crop, stride=stride)
    dataset = CityscapesDataset(str(demo_root), "val", eval_preset(resize=list(scale)))
    image, mask, path, _ = dataset[0]
    assert tuple(image.shape[1:]) == (350, 700) and tuple(mask.shape) == (256, 512)
    pipeline = Compose([dict(type="LoadImageFromFile"), dict(type="Resize", scale=scale, keep_ratio=True),
                        dict(type="PackSegInputs")])
    packed = pipeline(dict(img_path=path))
    with torch.no_grad():
        result = theirs.test_step(dict(inputs=[packed["inputs"]], data_samples=[packed["data_samples"]]))[0]
        got = scale_logits(ours, image[None], 1.0, "slide", crop, stride, out_size=tuple(mask.shape))
    expected = result.seg_logits.data[None]
    assert expected.shape == got.shape == (1, 19, 256, 512)
    assert relative(got, expected) <= 1e-4
    with torch.no_grad():  # its preprocessing: bit-identical input to the network
        assert torch.equal(theirs.data_preprocessor(dict(inputs=[packed["inputs"]]), False)["inputs"][0], image)


@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_small_v1c_encoders_equal_mmseg_resnet_v1c(depth, output_stride, tmp_path):
    """tu-resnet18c / 34c: mmseg's ResNetV1c-18/34 with its dilated basic blocks (second 3x3 undilated)."""
    from mmseg.models.backbones import ResNetV1c

    from segattn.models.encoders import Encoder

    dilations, strides = ((1, 1, 2, 4), (1, 2, 1, 1)) if output_stride == 8 else ((1, 1, 1, 2), (1, 2, 2, 1))
    theirs = randomize(ResNetV1c(depth=depth, dilations=dilations, strides=strides, contract_dilation=True))
    torch.save(theirs.state_dict(), tmp_path / "v1c.pth")
    ours = Encoder(f"tu-resnet{depth}c", str(tmp_path / "v1c.pth"), output_stride).eval()
    x = torch.randn(1, 3, 45, 61)
    theirs.eval()
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert got[1].shape == expected[3].shape
    assert relative(got[0], expected[2]) <= 1e-5 and relative(got[1], expected[3]) <= 1e-5


def test_a_silent_server_times_out_and_a_garbage_download_is_not_kept(fcn_checkpoint, tmp_path, monkeypatch):
    """A server that never answers fails the download after the timeout, leaving no .partial; a download that is
    no checkpoint is removed from the cache, so the next try fetches it again."""
    import socket

    import segattn.interop.foreign as foreign

    monkeypatch.setattr(foreign, "DOWNLOAD_TIMEOUT", 1)
    monkeypatch.setattr(foreign.fetch, "__defaults__", (True, 1))
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "garbage.pth").write_bytes(b"<html>not found</html>")
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        with local_site(tmp_path / "site", tmp_path / "hub") as site:
            refused(f"http://127.0.0.1:{silent.getsockname()[1]}/x.pth", FCN, tmp_path, "could not download")
            assert not list((tmp_path / "hub").rglob("*.partial"))
            refused(f"{site}/garbage.pth", FCN, tmp_path, "removed from the cache")
            assert not (tmp_path / "hub" / "checkpoints" / "garbage.pth").exists()
    finally:
        silent.close()
