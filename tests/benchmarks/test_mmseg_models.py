"""Whole models beside mmsegmentation's: the benchmark runs ours as the tools ship it, and an NCHW copy."""
import os

import pytest
import torch
from helpers import spatial_kernel

from segattn.interop.mmcv_stub import INSTALL, stub_mmcv_ext

stub_mmcv_ext()
pytest.importorskip("mmseg", reason=f"mmsegmentation is an optional peer: {INSTALL}")

import mmseg_models as mmseg_peers  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs", "mmseg")


def test_rows_time_the_shipped_memory_format_beside_nchw_and_mmseg(monkeypatch):
    seen = []
    real = mmseg_peers._ours_step

    def spy(cfg, model, x, y):  # the step's weights and images: channels-last as the trainer makes them
        seen.append((spatial_kernel(model).is_contiguous(memory_format=torch.channels_last),
                     x.is_contiguous(memory_format=torch.channels_last)))
        return real(cfg, model, x, y)

    monkeypatch.setattr(mmseg_peers, "_ours_step", spy)
    rows = mmseg_peers.with_ratios(mmseg_peers.compare("fcn", CONFIGS, eval_size=(33, 49), train_size=(33, 33),
                                                       repeats=1, warmup=0))
    assert [r["name"] for r in rows] == ["fcn R-50-D8: segattn", "fcn R-50-D8: segattn, NCHW",
                                         "fcn R-50-D8: mmseg 1.2.2"]
    assert seen == [(True, True), (False, False)]
    for row in rows[:2]:
        assert row["eval_vs_mmseg"] == pytest.approx(row["eval_ms"] / rows[2]["eval_ms"])
        assert row["train_vs_mmseg"] == pytest.approx(row["train_ms"] / rows[2]["train_ms"])
    assert "eval_vs_mmseg" not in rows[2]


def test_block_cases_refuse_blocks_whose_outputs_differ(monkeypatch):
    """The blocks are timed only once they compute the same thing: a changed weight of ours stops the part."""
    real = mmseg_peers.model_pair

    def off_by_gamma(head, config_dir):
        cfg, ours, theirs = real(head, config_dir)
        with torch.no_grad():
            ours.head.pam.gamma.add_(0.1)
        return cfg, ours, theirs

    monkeypatch.setattr(mmseg_peers, "model_pair", off_by_gamma)
    with pytest.raises(AssertionError, match="DANet PAM: segattn's block output differs from mmseg's"):
        mmseg_peers.block_cases(CONFIGS, "cpu", 1, 5, 7)
