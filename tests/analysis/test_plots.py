"""The evaluation pictures of tools/eval.py, at the class counts of the registered datasets."""
import numpy as np
from PIL import Image

from segattn.analysis.plots import confusion_figure


def test_confusion_picture_of_many_classes_stays_a_readable_size(tmp_path):
    """ADE20K's 150 classes: one picture of at most 2600 px a side (at 0.42 in a class it would be 9000 px and
    take about 20 s to draw), with the diagonal where the counts put it."""
    k = 150
    counts = np.ones((k, k), np.int64)
    counts[np.arange(k), np.arange(k)] = 10 * k
    path = tmp_path / "confusion.png"
    confusion_figure(counts, [f"class {i}" for i in range(k)], str(path))
    with Image.open(path) as im:
        assert max(im.size) <= 2600
        rgb = np.asarray(im.convert("RGB"), np.int32)
    blue = rgb[..., 2] - rgb[..., 0] > 100  # the matrix's cells above about 0.5 of a row (Blues); text is grey
    ys, xs = np.nonzero(blue[:, : int(0.85 * rgb.shape[1])])  # left of the colour bar
    assert len(ys) > 1000 and abs(np.corrcoef(ys, xs)[0, 1]) > 0.95  # the cells lie on a line: the diagonal


def test_the_confusion_colour_bar_reads_in_percent_as_the_cells_do(tmp_path, monkeypatch):
    """Cells print percentages (0..100): the colour bar goes 0..100 too, and says what it counts."""
    from matplotlib.figure import Figure

    drawn = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self) or real(self, *a, **k))
    counts = np.array([[8, 2], [1, 9]])
    confusion_figure(counts, ["a", "b"], str(tmp_path / "c.png"))
    matrix, bar = drawn[0].axes
    assert bar.get_ylim() == (0.0, 100.0) and "%" in bar.get_ylabel()
    assert sorted(t.get_text() for t in matrix.texts) == ["10", "20", "80", "90"]
