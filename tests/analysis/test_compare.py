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
