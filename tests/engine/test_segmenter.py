"""``segattn.Segmenter``: one image from Python as tools/eval.py predicts it, pretrained folders, tools/publish.py."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from helpers import ENCODER, run_tool, tiny_config
from segattn import Segmenter, build_model
from segattn.data.cityscapes import PALETTE, CityscapesDataset
from segattn.data.io import current_umask, read_mask
from segattn.errors import CheckpointError, ConfigError, DataError, MissingFileError, OutputError


@pytest.fixture(scope="module")
def checkpoint(demo_root, tmp_path_factory):
    """A CCNet checkpoint as tools/train.py writes one (weights, config, iteration, metrics, optimizer)."""
    tmp = tmp_path_factory.mktemp("segmenter")
    cfg = tiny_config(demo_root, tmp, head="ccnet")
    cfg.eval.scales = [0.3, 0.4]  # two scales and a flip: the averaging eval.py does
    cfg.eval.flip = True
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True))
    for p in model.parameters():
        if p.numel() == 1:
            p.data.fill_(1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp / "best.pth"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": 40,
                "metrics": {"mIoU": 0.4321, "mAcc": 0.5, "aAcc": 0.8, "iteration": 40},
                "config": OmegaConf.to_container(cfg, resolve=True), "rng": torch.get_rng_state()}, path)
    OmegaConf.save(cfg, tmp / "cfg.yaml")
    return path, tmp / "cfg.yaml"


def val_images(demo_root):
    return sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))


def test_predict_equals_eval_py_pixel_for_pixel(checkpoint, demo_root, tmp_path):
    """tools/eval.py --save-pred writes label ids; the Segmenter's train ids mapped the same way equal them."""
    ckpt, cfg = checkpoint
    run_tool("eval.py", cfg, "--checkpoint", ckpt, "--save-pred", tmp_path / "pred", "--no-progress")
    images = val_images(demo_root)
    # a user's script in its own process, as eval.py runs (this test process may run at another thread count,
    # whose float sums could flip a near-tied pixel)
    script = ("import sys, numpy as np\nfrom segattn import Segmenter\n"
              "segmenter = Segmenter.from_checkpoint(sys.argv[1])  # the config saved in the checkpoint\n"
              "np.save(sys.argv[2], np.stack(segmenter.predict(sys.argv[3:])))\n")
    subprocess.run([sys.executable, "-c", script, str(ckpt), str(tmp_path / "labels.npy"), *images], check=True,
                   timeout=600)
    predictions = list(np.load(tmp_path / "labels.npy"))
    assert len(predictions) == len(images) == 3
    for path, labels in zip(images, predictions):
        written = read_mask(str(tmp_path / "pred" / os.path.basename(path)))
        assert labels.shape == written.shape and labels.dtype == np.uint8
        np.testing.assert_array_equal(CityscapesDataset.to_label_ids(labels), written)


def test_inputs_logits_and_pictures(checkpoint, demo_root):
    ckpt, cfg = checkpoint
    segmenter = Segmenter.from_checkpoint(ckpt, config=str(cfg), device="cpu")
    path = val_images(demo_root)[0]
    expected = segmenter.predict(path)
    array = np.asarray(Image.open(path).convert("RGB"))
    for given in (array, Image.open(path), np.dstack([array, np.full(array.shape[:2], 255, np.uint8)])):
        np.testing.assert_array_equal(segmenter.predict(given), expected)
    (labels, logits), = segmenter.predict([path], return_logits=True)
    np.testing.assert_array_equal(labels, expected)
    assert logits.shape == (19, *expected.shape) and logits.dtype == np.float32
    top = np.sort(logits, axis=0)[-2:]
    tied = top[0] == top[1]  # two probabilities a float32 apart can share a logarithm: argmax takes the first
    assert ((logits.argmax(0) == expected) | tied).all() and tied.mean() < 1e-3
    np.testing.assert_allclose(np.exp(logits).sum(0), 1, rtol=1e-4)  # log class probabilities
    color = segmenter.colorize(expected)
    shown = int(expected.flat[0])  # a class the model predicts, in Cityscapes' colour
    assert color.shape == array.shape and tuple(color[expected == shown][0]) == PALETTE[shown]
    blended = segmenter.overlay(array, expected, alpha=1.0)
    np.testing.assert_array_equal(blended, color)
    tiny = segmenter.predict(np.zeros((1, 1, 3), np.uint8))
    assert tiny.shape == (1, 1)
    with pytest.raises(DataError, match="must be uint8"):
        segmenter.predict(array.astype(np.float32))
    with pytest.raises(DataError, match="expected a path, a PIL image"):
        segmenter.predict(42)


def test_config_and_overrides(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu", overrides=["eval.flip=false"])
    assert segmenter.cfg.eval.flip is False and list(segmenter.cfg.eval.scales) == [0.3, 0.4]
    with pytest.raises(ConfigError, match="eval.flipp"):
        Segmenter.from_checkpoint(ckpt, device="cpu", overrides=["eval.flipp=false"])
    bare = tmp_path / "bare.pth"
    torch.save({"model": torch.load(ckpt, weights_only=False)["model"]}, bare)
    with pytest.raises(ConfigError, match="holds no config; give its YAML"):
        Segmenter.from_checkpoint(bare, device="cpu")


def test_save_pretrained_round_trip_and_card(checkpoint, demo_root, tmp_path):
    ckpt, _ = checkpoint
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    weights = segmenter.save_pretrained(tmp_path / "folder")
    assert sorted(os.listdir(tmp_path / "folder")) == ["README.md", "config.yaml", "model.safetensors"]
    from safetensors.torch import load_file

    assert set(load_file(weights)) == set(segmenter.model.state_dict())  # weights only
    card = (tmp_path / "folder" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: segattn\npipeline_tag: image-segmentation\n")
    assert f"`ccnet` head on `{ENCODER}`, output stride 8; auxiliary FCN head on layer3" in card
    assert "mIoU 43.21" in card and "| 13 | car | (0, 0, 142) |" in card and "license: other" in card
    assert f"# ccnet ({ENCODER}) on Cityscapes\n" in card and "tags: [semantic-segmentation, ccnet, cityscapes]" in card
    loaded = Segmenter.from_pretrained(str(tmp_path / "folder"), device="cpu")
    image = val_images(demo_root)[1]
    np.testing.assert_array_equal(loaded.predict(image), segmenter.predict(image))


def test_the_card_names_the_data_a_model_trained_on(checkpoint, tmp_path):
    """The demo recipe trains on generated data in the Cityscapes layout: its card says so, and does not tag the
    model as a Cityscapes one; a folder dataset is one's own data."""
    from omegaconf import OmegaConf

    from layouts import make_folder
    from segattn.engine.model_card import model_card

    segmenter = Segmenter.from_checkpoint(checkpoint[0], device="cpu")
    demo = OmegaConf.merge(segmenter.cfg, {"data": {"demo": True}})
    card = model_card(demo, segmenter.class_names, segmenter.palette, {})
    assert f"# ccnet ({ENCODER}) on segattn's procedural demo data (in the Cityscapes layout; not Cityscapes " \
        "images)" in card
    assert "tags: [semantic-segmentation, ccnet, segattn-demo]" in card and "cityscapes]" not in card
    root = make_folder(tmp_path / "mine")
    folder = OmegaConf.merge(segmenter.cfg, {"data": {"dataset": "folder", "root": str(root),
                                                      "class_names": ["sky", "tree", "road"]}})
    card = model_card(folder, ["sky", "tree", "road"], segmenter.palette[:3], {})
    assert "on a folder dataset of one's own" in card and "custom-data]" in card and f"at `{root}`" in card


def test_a_segmenter_says_what_it_is(tmp_path):
    from helpers import tiny_config
    from segattn.models import build_model

    cfg = tiny_config("data/demo", tmp_path)
    text = repr(Segmenter(build_model(cfg), cfg, "cpu", {"iteration": 6}))
    assert text == (f"Segmenter(ccnet head on {ENCODER}, 19 classes (road, sidewalk, building, wall, ...), device "
                    "cpu, iteration 6)")


def test_card_of_converted_weights_names_their_source_and_licence(checkpoint):
    from segattn.engine.model_card import model_card

    segmenter = Segmenter.from_checkpoint(checkpoint[0], device="cpu")
    url = "https://download.openmmlab.com/mmsegmentation/v0.5/ccnet/x-73eed8ca.pth"
    card = model_card(segmenter.cfg, segmenter.class_names, segmenter.palette,
                      {"source": {"format": "mmseg", "address": url}})
    assert "license: apache-2.0" in card and f"converted from mmseg weights: {url}" in card
    assert "not recorded with these weights" in card  # a conversion records no validation metrics


def test_a_hub_repo_in_the_local_cache_loads_offline(checkpoint, demo_root, tmp_path, monkeypatch):
    """``from_pretrained("user/name")`` through huggingface_hub's own cache lookup, offline: a snapshot laid out as
    huggingface_hub stores a download (refs/main naming the snapshot folder)."""
    ckpt, _ = checkpoint
    cache = tmp_path / "hf"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--ccnet-demo"
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    segmenter.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    loaded = Segmenter.from_pretrained("someone/ccnet-demo", device="cpu")
    image = val_images(demo_root)[0]
    np.testing.assert_array_equal(loaded.predict(image), segmenter.predict(image))


def test_from_pretrained_errors(checkpoint, tmp_path, monkeypatch):
    ckpt, _ = checkpoint
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # read at import: the variable alone would be too late
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingFileError, match="only a repo already in the local cache loads"):
        Segmenter.from_pretrained("nobody-here/no-such-model")
    with pytest.raises(MissingFileError, match="not a folder"):
        Segmenter.from_pretrained(str(tmp_path / "missing" / "folder"))
    folder = tmp_path / "f"
    Segmenter.from_checkpoint(ckpt, device="cpu").save_pretrained(folder, hashed=True)
    (weights,) = glob.glob(str(folder / "model-*.safetensors"))
    with open(weights, "r+b") as f:  # one byte changed: the name's sha256 prefix no longer holds
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(CheckpointError, match="sha256 does not start with"):
        Segmenter.from_pretrained(str(folder))
    os.remove(weights)
    with pytest.raises(MissingFileError, match="expected one model.safetensors"):
        Segmenter.from_pretrained(str(folder))


def test_publish_tool(checkpoint, demo_root, tmp_path, monkeypatch):
    """tools/publish.py as a user runs it: a hashed weights file, no optimizer, loads and predicts the same; an
    upload that cannot happen (offline here) is one line after the folder is written."""
    ckpt, _ = checkpoint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = run_tool("publish.py", ckpt, "--output", tmp_path / "pub", "--push", "someone/model", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "upload failed" in proc.stderr
    (weights,) = glob.glob(str(tmp_path / "pub" / "model-*.safetensors"))
    from segattn.weights import sha256_of

    assert os.path.basename(weights) == f"model-{sha256_of(weights)[:8]}.safetensors"
    assert os.path.basename(weights) in proc.stdout and "weights only" in proc.stdout
    assert os.path.getsize(weights) < os.path.getsize(ckpt)  # the optimizer's momentum is gone
    image = val_images(demo_root)[2]
    published = Segmenter.from_pretrained(str(tmp_path / "pub"), device="cpu")
    original = Segmenter.from_checkpoint(ckpt, device="cpu")
    np.testing.assert_array_equal(published.predict(image), original.predict(image))


def test_publish_never_deletes_or_overwrites_what_it_did_not_write(checkpoint, tmp_path, monkeypatch):
    """--output holding other files, or another model's publish, is refused with everything left as it was; the
    same model published again replaces its own weights; a full disk mid-write leaves the earlier publish whole;
    the files are ordinary ones (the umask's mode, not 0600)."""
    ckpt, _ = checkpoint
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    (mine / "model-final.safetensors").write_text("my weights")
    proc = run_tool("publish.py", ckpt, "--output", mine, check=False)
    assert proc.returncode == 2 and "holds 'model-final.safetensors' and 1 more, which a publish does not write" \
        in proc.stderr and proc.stderr.count("\n") == 1
    assert sorted(os.listdir(mine)) == ["model-final.safetensors", "notes.txt"]
    assert (mine / "model-final.safetensors").read_text() == "my weights"

    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    pub = tmp_path / "pub"
    first = segmenter.save_pretrained(pub, hashed=True)
    assert oct(os.stat(first).st_mode & 0o777) == oct(0o666 & ~current_umask())
    before = {n: (pub / n).read_bytes() for n in os.listdir(pub)}
    from safetensors import torch as safetensors_torch

    def full_disk(state, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors_torch, "save_file", full_disk)
    with torch.no_grad():
        next(segmenter.model.parameters()).add_(1.0)  # new weights, the same model
    with pytest.raises(OSError):
        segmenter.save_pretrained(pub, hashed=True)
    assert {n: (pub / n).read_bytes() for n in os.listdir(pub)} == before  # the earlier publish, whole
    monkeypatch.undo()
    second = segmenter.save_pretrained(pub, hashed=True)
    assert sorted(os.listdir(pub)) == sorted(["README.md", "config.yaml", os.path.basename(second)])
    assert second != first

    other = Segmenter.from_checkpoint(ckpt, device="cpu", overrides=["model.head.recurrence=1"])
    with pytest.raises(OutputError, match="holds a pretrained folder of another model"):
        other.save_pretrained(pub)
    assert sorted(os.listdir(pub)) == sorted(["README.md", "config.yaml", os.path.basename(second)])


def test_outputs_never_follow_a_link_planted_in_the_output_folder(checkpoint, demo_root, tmp_path):
    """What tools/infer.py writes (Segmenter.predict_folder): a symlink planted where an output goes is replaced by
    the output, never written through: no file outside --output is overwritten or created."""
    ckpt, _ = checkpoint
    images = tmp_path / "images"
    images.mkdir()
    image = val_images(demo_root)[0]
    os.symlink(image, images / os.path.basename(image))
    stem = os.path.splitext(os.path.basename(image))[0]
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (outside / "victim.png").write_bytes(b"precious")
    os.symlink(outside / "victim.png", out / f"{stem}_pred.png")  # an existing file outside
    os.symlink(outside / "new.png", out / f"{stem}_color.png")     # a file that would be created outside
    os.symlink(outside / "new.jpg", out / f"{stem}_overlay.jpg")
    os.symlink(outside / "new.json", out / "manifest.json")
    done, failed, _ = Segmenter.from_checkpoint(ckpt, device="cpu").predict_folder(str(images), str(out),
                                                                                   progress=False)
    assert (done, failed) == (1, [])
    assert (outside / "victim.png").read_bytes() == b"precious" and sorted(os.listdir(outside)) == ["victim.png"]
    for name in [f"{stem}{s}" for s in ("_pred.png", "_color.png", "_overlay.jpg")] + ["manifest.json"]:
        path = out / name
        assert path.is_file() and not path.is_symlink()
    assert sorted(os.listdir(out)) == sorted([f"{stem}{s}" for s in ("_pred.png", "_color.png", "_overlay.jpg")]
                                             + ["manifest.json"])


def test_a_config_that_came_with_weights_imports_nothing_unless_told(checkpoint, tmp_path, monkeypatch):
    """``imports:`` in a checkpoint's saved config or a pretrained folder's config.yaml would run a module's code on
    load: refused in one line unless the user gives imports=[...] (command line, or overrides= in Python)."""
    ckpt, _ = checkpoint
    code = tmp_path / "code"
    code.mkdir()
    marker = tmp_path / "ran"
    for name in ("pwnmod", "pwnmod2"):
        (code / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])))
    saved = torch.load(ckpt, weights_only=False)
    saved["config"]["imports"] = ["pwnmod"]
    planted = tmp_path / "planted.pth"
    torch.save(saved, planted)

    proc = run_tool("eval.py", "--checkpoint", planted, "--no-progress", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "imports ['pwnmod'] not imported" in proc.stderr
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"imports \['pwnmod'\] not imported: .*overrides=\['imports=\[pwnmod\]'\]"):
        Segmenter.from_checkpoint(planted, device="cpu")
    assert not marker.exists()
    Segmenter.from_checkpoint(planted, device="cpu", overrides=["imports=[pwnmod]"])  # the user said so
    assert marker.read_text() == "pwnmod"

    folder = tmp_path / "pretrained"
    Segmenter.from_checkpoint(ckpt, device="cpu").save_pretrained(folder)
    config = OmegaConf.load(folder / "config.yaml")
    config.imports = ["pwnmod2"]
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(ConfigError, match=r"config.yaml: imports \['pwnmod2'\] not imported"):
        Segmenter.from_pretrained(str(folder), device="cpu")
    assert marker.read_text() == "pwnmod"


def test_a_pil_image_is_read_as_its_file_is(checkpoint, tmp_path):
    """A 16-bit PNG given as a path and as Image.open(path): one reader, the same pixels and labels (PIL's
    convert("RGB") saturates 16-bit values where the path reader scales them by 1/257)."""
    from PIL import Image

    from segattn.data.io import read_image, write_png
    from segattn.engine.segmenter import as_rgb

    ramp = (np.linspace(0, 65535, 64 * 96).reshape(64, 96)).astype(np.uint16)
    path = tmp_path / "deep.png"
    write_png(str(path), ramp)
    with Image.open(path) as image:
        assert image.mode.startswith("I")
        from_pil = as_rgb(image)
        np.testing.assert_array_equal(from_pil, read_image(str(path)))
        ckpt, _ = checkpoint
        segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
        np.testing.assert_array_equal(segmenter.predict(image), segmenter.predict(str(path)))
    assert from_pil.max() == 255 and 120 < from_pil.mean() < 135  # scaled, not saturated at 255
    # an EXIF-rotated JPEG: the path reader (OpenCV) turns it upright, and so does the PIL path
    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to view
    Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (64, 1))[..., None].repeat(3, 2)).save(
        photo, exif=exif.tobytes(), quality=95)
    upright = read_image(str(photo))
    with Image.open(photo) as image:
        assert image.size == (96, 64)
        turned = as_rgb(image)
    assert upright.shape == turned.shape == (96, 64, 3)
    assert np.abs(upright.astype(int) - turned.astype(int)).mean() < 2  # two JPEG decoders, the same picture


def test_a_pretrained_config_missing_a_section_or_unreadable_is_named(checkpoint, tmp_path):
    """config.yaml holding the model section alone loaded with default eval scales (other predictions, silently);
    one cut short was blamed on the weights; one with a constructor tag printed a raw YAML error."""
    ckpt, _ = checkpoint
    folder = tmp_path / "pretrained"
    Segmenter.from_checkpoint(ckpt, device="cpu").save_pretrained(folder)
    full = (folder / "config.yaml").read_text()
    model_only = OmegaConf.create({"model": OmegaConf.load(folder / "config.yaml").model})
    OmegaConf.save(model_only, folder / "config.yaml")
    with pytest.raises(ConfigError, match=r"config.yaml: no data, eval sections; a pretrained folder's config.yaml "
                                          r"holds the whole config"):
        Segmenter.from_pretrained(str(folder), device="cpu")
    (folder / "config.yaml").write_text(full[: full.index("\ndata:")])  # cut short after the model section
    with pytest.raises(ConfigError, match=r"no data, eval sections"):
        Segmenter.from_pretrained(str(folder), device="cpu")
    (folder / "config.yaml").write_text(full[: full.index("\ndata:") // 2])  # cut mid-way through the model section
    with pytest.raises(ConfigError, match=r"config.yaml: (no data, eval sections|not a readable config)"):
        Segmenter.from_pretrained(str(folder), device="cpu")
    (folder / "config.yaml").write_text("model: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match=r"config.yaml: not a readable config \(") as err:
        Segmenter.from_pretrained(str(folder), device="cpu")
    assert "\n" not in str(err.value)
    (folder / "config.yaml").write_text(full)
    Segmenter.from_pretrained(str(folder), device="cpu")


def test_empty_inputs_and_a_file_as_output_are_one_line(checkpoint, demo_root, tmp_path):
    ckpt, _ = checkpoint
    segmenter = Segmenter.from_checkpoint(ckpt, device="cpu")
    with pytest.raises(DataError, match=r"predict: image: an empty image \(0x5 pixels\)"):
        segmenter.predict(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(DataError, match=r"an empty image \(4x0 pixels\)"):
        segmenter.predict(np.zeros((4, 0), np.uint8))  # grey too
    (tmp_path / "out").write_text("a file")
    images = tmp_path / "images"
    images.mkdir()
    os.symlink(val_images(demo_root)[0], images / "a.png")
    with pytest.raises(OutputError, match=r"--output .*out: a file, not a folder"):
        segmenter.predict_folder(str(images), str(tmp_path / "out"), progress=False)
    assert (tmp_path / "out").read_text() == "a file"
