"""A user's own folder dataset: masks hold class indices; anything else in them is ignore, as promised."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import tiny_config
from layouts import make_folder, write_grey
from segattn.data import build_dataset
from segattn.data.io import read_mask


def test_labels_at_or_above_num_classes_are_trained_as_ignore(tmp_path):
    """A mask value 7 in a three-class folder set (say, a class the user dropped) becomes ignore (255) where the
    loss reads it, instead of an index past the classes (an IndexError on the CPU, a device assert on a GPU)."""
    from segattn.engine.losses import build_loss

    root = make_folder(tmp_path / "folder")
    path = root / "train" / "masks" / "img0.png"
    raw = read_mask(str(path))
    raw[:5, :5] = 7
    raw[5:8, :5] = 3
    write_grey(path, raw)
    cfg = tiny_config(str(root), tmp_path / "run")
    cfg.data = OmegaConf.merge(cfg.data, {"dataset": "folder", "class_names": ["sky", "tree", "road"],
                                          "train_split": "train", "val_split": "val"})
    cfg.model.num_classes = 3
    dataset = build_dataset(cfg.data, "train", need_labels=True)
    _, mask, _, notes = dataset.load(0)
    assert (mask[:8, :5] == 255).all() and set(np.unique(mask)) <= {0, 1, 2, 255}
    assert notes  # still said, as before
    criterion = build_loss(cfg, {})
    logits = torch.randn(1, 3, *mask.shape, requires_grad=True)
    loss, _ = criterion({"main": logits}, torch.from_numpy(mask.astype(np.int64))[None])
    assert torch.isfinite(loss)


def test_a_float_image_with_nan_or_inf_is_refused_and_reported(tmp_path):
    """Per-image min-max scaling turned one infinite pixel into an all-black image, and check_dataset said OK: the
    image is refused in one line, and the dataset check lists it."""
    import cv2

    from segattn.data.check import check_split
    from segattn.data.io import UnreadableImage, read_image

    root = make_folder(tmp_path / "folder")
    image = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    image[3, 4, 1] = np.inf
    image[5, 6, 0] = np.nan
    path = root / "val" / "images" / "img0.tif"
    (root / "val" / "images" / "img0.jpg").unlink()
    assert cv2.imwrite(str(path), image)
    with pytest.raises(UnreadableImage, match=r"img0.tif: 2 pixel values are NaN or infinite"):
        read_image(str(path))
    data = OmegaConf.create({"dataset": "folder", "root": str(root), "class_names": ["sky", "tree", "road"],
                             "ignore_index": 255})
    report = check_split(data, "val")
    assert not report.ok and "NaN or infinite" in str(report)


OWN = [(255, 0, 128), (0, 200, 255), (255, 200, 0)]  # sky, tree, road: no palette would pick these


def folder_config(root, out_dir, **data):
    cfg = tiny_config(str(root), out_dir, head="ccnet")
    cfg.data = OmegaConf.merge(cfg.data, {"dataset": "folder", "class_names": ["sky", "tree", "road"], **data})
    cfg.model.num_classes = 3
    return cfg


def colours_of(picture) -> set:
    return {tuple(int(v) for v in c) for c in np.unique(picture.reshape(-1, 3), axis=0)}


def test_a_folder_palette_is_the_colours_of_every_picture_that_draws_classes(tmp_path):
    """``<root>/palette.txt`` colours the eval panels, infer's colour files, the attention figure's legend, the
    explorer's legend, the dataset browser and TensorBoard's panels (the validation set's palette); data.palette
    wins over it; a published model carries the colours with it."""
    import cv2

    from segattn.analysis.attention_maps import attention_maps, save_panel
    from segattn.analysis.browse import browse_samples, grid_figure
    from segattn.analysis.explorer import Explorer
    from segattn.data import dataset_palette
    from segattn.data.transforms import normalize_image
    from segattn.engine.evaluator import evaluate
    from segattn.engine.segmenter import Segmenter
    from segattn.models import build_model

    root = make_folder(tmp_path / "folder")
    (root / "palette.txt").write_text("# sky, tree, road\n255 0 128\n0,200,255\n255 200 0   # road\n")
    cfg = folder_config(root, tmp_path / "run")
    assert dataset_palette(cfg.data) == OWN
    val = build_dataset(cfg.data, "val")
    assert val.palette == OWN  # TensorBoard's panels and eval's colour panels draw in the val set's palette
    model = build_model(cfg).eval()
    evaluate(model, val, cfg, "cpu", progress=False, color_dir=str(tmp_path / "panels"))
    panel = cv2.cvtColor(cv2.imread(str(next((tmp_path / "panels").iterdir()))), cv2.COLOR_BGR2RGB)
    assert set(OWN) <= colours_of(panel)  # the ground truth holds all three classes
    segmenter = Segmenter(model, cfg, "cpu")
    segmenter.predict_folder(str(root / "val" / "images"), str(tmp_path / "pred"), progress=False)
    for path in (tmp_path / "pred").glob("*_color.png"):
        assert colours_of(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)) <= set(OWN)
    image = val.load(0)[0]
    result = attention_maps(model, normalize_image(image)[None], [(2, 3)])
    save_panel(str(tmp_path / "attention.png"), image, result, dataset_palette(cfg.data), 8,
               class_names=["sky", "tree", "road"])
    drawn = colours_of(cv2.cvtColor(cv2.imread(str(tmp_path / "attention.png")), cv2.COLOR_BGR2RGB))
    assert {OWN[c] for c in np.unique(result["prediction"].numpy())} <= drawn  # the figure's own prediction
    explorer = Explorer(model, cfg, "cpu", ["sky", "tree", "road"], dataset_palette(cfg.data))
    assert {colour for _, colour, _ in explorer.legend(explorer.open(image))} <= set(OWN)
    grid_figure(browse_samples(val, [0, 1]), val.class_names, val.palette, str(tmp_path / "grid.png"), "grid")
    assert set(OWN) <= colours_of(cv2.cvtColor(cv2.imread(str(tmp_path / "grid.png")), cv2.COLOR_BGR2RGB))
    segmenter.save_pretrained(tmp_path / "published")
    (root / "palette.txt").unlink()  # the published model keeps its colours without the data folder's file
    assert Segmenter.from_pretrained(str(tmp_path / "published"), device="cpu").palette == OWN
    assert dataset_palette(cfg.data) != OWN

    configured = folder_config(root, tmp_path / "run", palette=[[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert build_dataset(configured.data, "val").palette == [(1, 2, 3), (4, 5, 6), (7, 8, 9)]


def test_the_fixed_palette_has_no_dark_or_grey_colour_and_a_wrong_palette_is_one_line(tmp_path):
    """The palette a folder set gets by default: no class near black (ignore's colour), none grey, neighbours
    apart; a palette file or key with the wrong count stops the check with one line naming it."""
    import colorsys

    from helpers import run_tool
    from segattn.data import default_palette

    colours = default_palette(30)
    assert len(set(colours)) == 30
    for r, g, b in colours:
        _, saturation, value = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert value >= 0.75 and saturation >= 0.5
    root = make_folder(tmp_path / "folder")
    (root / "palette.txt").write_text("255 0 0\n0 255 0\n")
    args = ["configs/demo/ccnet.yaml", f"data.root={root}", "data.dataset=folder", "data.class_names=[sky,tree,road]",
            "model.num_classes=3", "data.demo=false"]
    proc = run_tool("check_dataset.py", *args, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: {root / 'palette.txt'}: 2 colours for 3 classes; give one [R, G, B] per "
                                   "class, in the order of the class names")
    from segattn.configure import load_tool_config
    from segattn.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.palette: colour 2 is \[7, 8, 300\]; each colour is three integers"):
        load_tool_config(args[0], args[1:] + ["data.palette=[[1,2,3],[4,5,6],[7,8,300]]"])


def test_check_dataset_names_the_likely_cause_of_a_colour_mask_and_of_labels_elsewhere(tmp_path):
    """A colour-coded mask is reported as such (not as "values outside the known ids"), and a split where no image
    finds its label says the labels are not where the layout puts them, as the start-up check of training does."""
    import cv2

    from segattn.data.check import check_split, startup_check
    from segattn.errors import MissingFileError

    root = make_folder(tmp_path / "folder")
    path = root / "val" / "masks" / "img1.png"
    ids = read_mask(str(path))
    colours = np.array([[0, 0, 200], [0, 160, 0], [200, 0, 0]] + [[0, 0, 0]] * 253, np.uint8)
    assert cv2.imwrite(str(path), colours[ids])  # the masks a labelling tool exports in colour
    data = OmegaConf.create({"dataset": "folder", "root": str(root), "class_names": ["sky", "tree", "road"],
                             "ignore_index": 255})
    report = str(check_split(data, "val"))
    assert f"colour label images: 1, e.g. {path}" in report and "label values outside" not in report
    assert "likely cause: these labels are colour images (R, G and B differ)" in report
    grey = root / "val" / "masks" / "img2.png"  # ids saved as three equal channels stay a valid mask
    assert cv2.imwrite(str(grey), np.repeat(read_mask(str(grey))[..., None], 3, axis=2))
    assert "img2" not in report and "img2" not in str(check_split(data, "val"))

    (root / "train" / "masks").rename(root / "train" / "labels")
    report = check_split(data, "train", decode=False)
    assert report.causes["images without labels"].startswith("none of the 3 images has a label file: the labels are "
                                                               "not where folder looks for them (<root>/<split>/images")
    with pytest.raises(MissingFileError, match=r"images without labels: 3, .*\(none of the 3 images has a label file"):
        startup_check(data, ["train"])
