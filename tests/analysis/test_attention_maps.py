import numpy as np
import pytest
import torch

from segattn import build_model
from segattn.analysis.attention_maps import attention_maps
from segattn.models import HEADS
from segattn.models.maps import TABLE_VIEWS


def _model(head):
    m = build_model({"head": head, "channels": 16, "encoder": {"name": "resnet18", "weights": None}})
    for p in m.parameters():
        if p.numel() == 1:  # gammas: let attention change the features
            p.data.fill_(1.0)
    return m.eval()


def test_ccnet_maps_sum_to_one_and_two_loops_reach_the_whole_image():
    res = attention_maps(_model("ccnet"), torch.randn(1, 3, 64, 96), [(3, 5)])
    (q, maps), = res["maps"]
    one, eff = maps["cca_loop1"], maps["cca_effective"]
    assert one.shape == eff.shape == (8, 12)
    torch.testing.assert_close(one.sum(), torch.tensor(1.0))
    torch.testing.assert_close(eff.sum(), torch.tensor(1.0))
    off_cross = torch.ones(8, 12, dtype=torch.bool)
    off_cross[3, :] = False
    off_cross[:, 5] = False
    assert one[off_cross].abs().max() == 0  # one loop: row and column only
    assert (eff[off_cross] > 0).all()  # two loops: every pixel contributes
    assert res["prediction"].shape == (64, 96)


def test_danet_and_nonlocal_maps():
    (_, d), = attention_maps(_model("danet"), torch.randn(1, 3, 64, 64), [(2, 2)])["maps"]
    torch.testing.assert_close(d["pam"].sum(), torch.tensor(1.0))
    channel, idx, w = d["cam_top"]
    assert len(idx) == 10 and w == sorted(w, reverse=True)
    (_, n), = attention_maps(_model("nonlocal"), torch.randn(1, 3, 64, 64), [(7, 0)])["maps"]
    torch.testing.assert_close(n["nonlocal"].sum(), torch.tensor(1.0))


def test_an_unknown_map_kind_is_an_error_not_dropped():
    from segattn.analysis.attention_maps import query_maps
    from segattn.errors import ConfigError

    maps = {"non_local": torch.full((1, 6, 6), 1 / 6), "grid": (2, 3), "axial": torch.zeros(1, 6, 3)}
    with pytest.raises(ConfigError, match="'axial', which the map tools cannot draw"):
        query_maps(maps, 0, 1)
    del maps["axial"]
    assert set(query_maps(maps, 0, 1)) == {"nonlocal"}


@pytest.mark.parametrize("head", HEADS.names())
def test_every_registered_head_is_visualised_or_says_why_not(head, tmp_path):
    """Maps that sum to 1 per query where the head has attention, else the one-line answer of the tool."""
    from segattn.analysis.attention_maps import save_panel
    from segattn.errors import ConfigError

    model = _model(head)
    try:
        result = attention_maps(model, torch.randn(1, 3, 64, 64), [(2, 3), (5, 1)])
    except ConfigError as err:
        assert "has no attention maps" in str(err) and "\n" not in str(err)
        return
    for _, maps in result["maps"]:
        for name, m in maps.items():
            if name not in TABLE_VIEWS:
                torch.testing.assert_close(m.sum(), torch.tensor(1.0), rtol=1e-4, atol=1e-4)
    save_panel(str(tmp_path / "panel.png"), np.zeros((64, 64, 3), np.uint8), result, [(0, 0, 0)] * 19, 8)
    assert (tmp_path / "panel.png").stat().st_size > 1000


@pytest.mark.parametrize("head,kind", [("danet", "position"), ("nonlocal", "non_local")])
def test_all_pairs_maps_form_only_the_queried_row(head, kind):
    """A 64 x 64 feature grid: the whole matrix would be 64 MB; one query's row is formed, equal to the matrix's."""
    from segattn.analysis.attention_maps import query_maps
    from segattn.analysis.benchmark import peak_cpu_bytes
    from segattn.ops.full_attention import AttentionRows

    model = _model(head)
    with torch.no_grad():
        maps = dict(model.head.attention_maps(torch.randn(1, model.head.in_channels, 64, 64)))
    assert isinstance(maps[kind], AttentionRows) and maps[kind].shape == (1, 4096, 4096)
    maps["grid"] = (64, 64)
    name = {"position": "pam", "non_local": "nonlocal"}[kind]
    got = {}
    peak = peak_cpu_bytes(lambda: got.update(query_maps(maps, 10, 33)))
    assert peak < 4096 * 4096 * 4 / 16
    row = torch.softmax(maps[kind].q[0, 10 * 64 + 33] @ maps[kind].k[0].t() * maps[kind].scale, -1)
    torch.testing.assert_close(got[name], row.view(64, 64))


def test_the_panel_titles_name_y_and_x(tmp_path, monkeypatch):
    """A query given as --query 40,120 is titled with which number is y and which x (pixels, or feature cells)."""
    from matplotlib.figure import Figure

    from segattn.analysis.attention_maps import save_panel

    drawn = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self) or real(self, *a, **k))
    result = attention_maps(_model("ccnet"), torch.randn(1, 3, 64, 64), [(2, 3)])
    save_panel(str(tmp_path / "p.png"), np.zeros((64, 64, 3), np.uint8), result, [(0, 0, 0)] * 19, 8,
               pixels=[(20, 28)])
    save_panel(str(tmp_path / "c.png"), np.zeros((64, 64, 3), np.uint8), result, [(0, 0, 0)] * 19, 8)
    assert drawn[0].axes[0].get_title() == "query: pixel y=20, x=28"
    assert drawn[1].axes[0].get_title() == "query: feature cell y=2, x=3"


def test_the_explorer_header_names_the_model_and_where_its_config_came_from():
    from omegaconf import OmegaConf

    pytest.importorskip("gradio", reason="the explorer's page comes with the demo extra")
    from segattn.analysis.explorer_app import describe_model

    cfg = OmegaConf.create({"model": {"head": {"type": "ccnet"}, "encoder": {"name": "resnet18"}}})
    assert describe_model(cfg, "checkpoints/demo_ccnet/best.pth", None, 50) == (
        "ccnet head on resnet18: checkpoint `checkpoints/demo_ccnet/best.pth` (with the config saved in it); 50 "
        "images to choose from.")
    import os

    assert describe_model(cfg, os.path.abspath("best.pth"), "configs/demo/ccnet.yaml", 3).startswith(
        "ccnet head on resnet18: config `configs/demo/ccnet.yaml`, checkpoint `best.pth`;")  # no machine's folders
