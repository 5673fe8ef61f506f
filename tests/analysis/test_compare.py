from helpers import tiny_config
from segattn.analysis.compare import MARK_END, MARK_START, compare_row, markdown, write_into


def test_rows_and_readme_section(demo_root, tmp_path):
    rows = []
    for name, overrides in (("fcn", {}), ("fcn_se", {"block": "se"}), ("ccnet", {"head": "ccnet"})):
        cfg = tiny_config(demo_root, tmp_path / name, head=overrides.get("head", "fcn"), max_iters=1,
                          val_interval=1)
        cfg.model.encoder.block_attention = overrides.get("block", "none")
        rows.append(compare_row(cfg, name))
    by = {r["name"]: r for r in rows}
    assert by["fcn_se"]["params_m"] > by["fcn"]["params_m"] and by["fcn_se"]["block"] == "se"
    assert by["ccnet"]["head_mb"] > 0 and all(0 <= r["mIoU"] <= 1 and r["step_s"] > 0 for r in rows)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{MARK_START}\nold\n{MARK_END}\noutro\n")
    write_into(str(readme), markdown(rows), "python tools/compare.py ...")
    text = readme.read_text()
    assert "old" not in text and "| fcn_se | fcn | se |" in text and text.endswith("outro\n")


def test_probe_rows_split_by_the_key_and_measuring_leaves_the_model_as_trained(tmp_path, monkeypatch):
    """On the probe a row holds the split accuracy, taken from the model as the run saved it: the FLOP and memory
    measurements must not move the trained model's batch-norm statistics first."""
    import os

    import torch
    from helpers import ROOT

    from segattn.analysis import probe
    from segattn.configure import load_tool_config
    from segattn.data.context_probe import generate
    from segattn.engine.checkpoint import load_checkpoint

    root = generate(str(tmp_path / "probe"), num_train=4, num_val=3, progress=False)
    cfg = load_tool_config(os.path.join(ROOT, "configs", "probe", "ccnet_r1.yaml"),
                           [f"data.root={root}", "data.demo=false", f"train.out_dir={tmp_path}",
                            f"train.log_dir={tmp_path / 'runs'}", "train.max_iters=3", "train.val_interval=3",
                            "train.checkpoint_interval=3"])
    scored = {}
    real = probe.reach_accuracy

    def spy(model, *args, **kwargs):
        scored.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(probe, "reach_accuracy", spy)
    row = compare_row(cfg, "ccnet_r1")
    assert row["head"] == "ccnet R=1" and 0 <= row["row_column"] <= 1 and 0 <= row["elsewhere"] <= 1
    saved = load_checkpoint(str(tmp_path / "probe_ccnet_r1" / "last.pth"))["model"]
    assert scored.keys() == saved.keys() and all(torch.equal(scored[k], saved[k]) for k in saved)
    table = markdown([row, dict(row, seed=1)])
    assert "| ccnet_r1 | ccnet R=1 | none |" in table and "row/column acc. %" in table and "2 seeds" in table


def test_two_key_probe_rows_hold_the_object_accuracy(tmp_path):
    import os

    from helpers import ROOT

    from segattn.configure import load_tool_config
    from segattn.data.context_probe_pairs import generate

    root = generate(str(tmp_path / "pairs"), num_train=4, num_val=3, progress=False)
    cfg = load_tool_config(os.path.join(ROOT, "configs", "probe", "fcn.yaml"),
                           ["data.dataset=context_probe_pairs", f"data.root={root}", "data.demo=false",
                            f"train.out_dir={tmp_path}", f"train.log_dir={tmp_path / 'runs'}", "train.max_iters=2",
                            "train.val_interval=2", "train.checkpoint_interval=2"])
    row = compare_row(cfg, "fcn_pairs")
    assert 0 <= row["objects"] <= 1 and "row_column" not in row
    assert "object acc. % (two keys)" in markdown([row]) and "row/column" not in markdown([row])


def test_with_seed_trains_each_seed_in_its_own_folder_and_a_bad_seeds_list_is_one_line(tmp_path):
    from helpers import run_tool
    from omegaconf import OmegaConf

    from segattn.analysis.compare import with_seed

    cfg = OmegaConf.create({"train": {"seed": 0, "experiment": "probe_ccnet"}})
    seeded = with_seed(cfg, 2)
    assert (seeded.train.seed, seeded.train.experiment) == (2, "probe_ccnet_seed2") and cfg.train.seed == 0
    proc = run_tool("compare.py", "configs/probe/fcn.yaml", "--seeds", "0,x", check=False)
    assert proc.returncode != 0 and "--seeds '0,x': expected comma-separated integers" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_after_a_first_run_trains_in_its_own_folder_and_keeps_its_table(demo_root, tmp_path):
    """tools/compare.py run where tools/train.py trained the same config: the first run's folder is untouched; the
    comparison's runs, table (markdown) and rows (JSON) land in --out-dir."""
    import json

    from helpers import run_tool
    from omegaconf import OmegaConf

    cfg = tiny_config(demo_root, tmp_path, head="fcn", max_iters=1, val_interval=1)
    path = tmp_path / "fcn.yaml"
    OmegaConf.save(cfg, path)
    run_tool("train.py", path, "--no-progress")
    first = (tmp_path / "t" / "last.pth").read_bytes()
    out = tmp_path / "cmp"
    proc = run_tool("compare.py", path, "--no-progress", "--out-dir", out)
    assert (tmp_path / "t" / "last.pth").read_bytes() == first
    assert (out / "t" / "last.pth").is_file() and (out / "runs" / "t").is_dir()
    table = (out / "compare.md").read_text()
    assert "| fcn | fcn | none |" in table and table.startswith("`python tools/compare.py ")
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["fcn"] and 0 <= rows[0]["mIoU"] <= 1
    assert str(out / "compare.md") in proc.stdout
