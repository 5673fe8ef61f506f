"""The front door and the docs: short, linked, free of history, their tables copied from results files, their
examples runnable as written."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest
from helpers import ROOT

from segattn.data.cityscapes import CLASS_NAMES

DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
PAGES = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "configs", "mmseg", "README.md"), *DOCS]
HISTORY = re.compile(r"\bat commit\b|\bissue #?\d+|\bbefore this (change|layout)\b|\bsince then\b|\bstop \d+\b|"
                     r"\bin an earlier sitting\b|\bone-off\b", re.I)


def read(path):
    with open(path) as f:
        return f.read()


def code_blocks(text, lang):
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_readme_is_a_front_door():
    text = read(os.path.join(ROOT, "README.md"))
    assert len(text.splitlines()) <= 200
    for section in ("## Setup and first run", "### After the first run", "## Results", "## Tools", "## Python",
                    "## Your own data", "## Documentation"):
        assert section in text
    for page in DOCS:  # every page of docs/ is reachable from the front door
        assert f"(docs/{os.path.basename(page)})" in text, page


def _tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    return set(out.split())


def test_no_history_outside_the_changelog():
    tracked = _tracked()
    if not tracked:
        pytest.skip("not a git checkout")
    offenders = []
    for rel in sorted(tracked):
        if rel == "CHANGELOG.md" or rel.startswith("benchmarks/results/") or rel == "tests/test_docs.py":
            continue
        if not rel.endswith((".py", ".md", ".yaml", ".cfg", ".toml")):
            continue
        for n, line in enumerate(read(os.path.join(ROOT, rel)).splitlines(), 1):
            if HISTORY.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()[:100]}")
    assert not offenders, "history belongs in CHANGELOG.md:\n" + "\n".join(offenders)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", read(page)):
        if re.match(r"[a-z]+://", target):
            continue
        assert os.path.exists(os.path.normpath(os.path.join(os.path.dirname(page), target))), (page, target)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_commands_never_write_a_tracked_file(page):
    tracked = _tracked()
    for block in code_blocks(read(page), "bash"):
        words = shlex.split(block.replace("\\\n", " "), comments=True)
        for flag, value in zip(words, words[1:]):
            if flag in ("--output", "--save-pred", "--save-color"):
                assert os.path.normpath(value) not in tracked, (page, flag, value)


def test_docs_tables_are_the_results_files():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        from docs_tables import BLOCK, render
    finally:
        sys.path.pop(0)
    blocks = 0
    for page in DOCS:
        text = read(page)
        blocks += len(BLOCK.findall(text))
        assert render(text, os.path.join(ROOT, "benchmarks", "results")) == text, \
            f"{page}: a results block differs from its file; run python benchmarks/docs_tables.py"
    assert blocks >= 6


def test_readme_demo_figures_come_from_the_demo_results_file():
    import json

    files = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "demo-*.json")))
    assert files, "no demo results file"
    demo = read(os.path.join(ROOT, "docs", "benchmarks.md"))
    cited = re.findall(r"<!-- results: (demo-[^ ]+)\.md -->", demo)  # heads re-measured alone come first
    assert cited
    rows = {}
    for name in cited:  # a row's figure is that of the first file citing it
        for row in json.loads(read(os.path.join(ROOT, "benchmarks", "results", name + ".json")))["rows"]:
            rows.setdefault(row["name"], row)
    readme = read(os.path.join(ROOT, "README.md"))
    for row in rows.values():
        config = re.search(r"`(configs/demo/\w+\.yaml)`", row["name"])
        if config:
            assert re.search(rf"`{re.escape(config.group(1))}`\) \| {row['miou']:.2f} \|", readme), row
        else:
            assert f"reaches {row['miou']:.2f}" in readme, row
    ccnet = next(row for row in rows.values() if "configs/demo/ccnet.yaml" in row["name"])  # the first run's time
    minutes, seconds = divmod(round(ccnet["seconds"]), 60)
    assert f"This run took {minutes} min {seconds} s on a " in readme
    assert "about 4 minutes" not in readme


def test_mmseg_zoo_page_is_up_to_date():
    from segattn.interop.zoo import zoo_markdown

    config_dir = os.path.join(ROOT, "configs", "mmseg")
    assert read(os.path.join(config_dir, "README.md")) == zoo_markdown(config_dir), \
        "configs/mmseg/README.md is out of date: run python tools/mmseg_zoo.py"


def test_readme_python_example_runs_as_written(demo_root, tmp_path):
    """In a folder laid out as after the first run (configs, the image, checkpoints/demo_ccnet/best.pth of the demo
    config's model, trained one step here)."""
    from segattn.configure import load_tool_config
    from segattn.engine.trainer import Trainer

    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    cfg = load_tool_config(os.path.join(ROOT, "configs", "demo", "ccnet.yaml"), [
        # data.demo=false: the session's small demo set is not to be regenerated at the full demo's size
        f"data.root={demo_root}", "data.demo=false", "train.max_iters=1", "train.val_interval=1",
        f"train.out_dir={tmp_path / 'checkpoints'}", f"train.log_dir={tmp_path / 'runs'}"])
    Trainer(cfg, progress=False).fit()
    assert (tmp_path / "checkpoints" / "demo_ccnet" / "best.pth").is_file()
    first, second = code_blocks(read(os.path.join(ROOT, "README.md")), "python")[:2]
    image = "data/demo/leftImg8bit/val/frankfurt/frankfurt_000002_000019_leftImg8bit.png"
    assert image in first
    available = sorted(glob.glob(os.path.join(demo_root, "leftImg8bit", "val", "*", "*.png")))[0]
    os.makedirs(os.path.dirname(tmp_path / image), exist_ok=True)
    os.symlink(available, tmp_path / image)  # the tiny demo split holds other file names than the full one
    outputs = []
    for block in (first, second):
        proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout)
    counts = eval(outputs[0].strip().splitlines()[-1])  # {class name: pixels} of the first example's print
    assert sum(counts.values()) == 256 * 512 and set(counts) <= set(CLASS_NAMES)


DOCUMENTED_MODULES = sorted({m for page in PAGES for m in re.findall(r"python -m (segattn[\w.]+)", read(page))})


@pytest.mark.parametrize("module", DOCUMENTED_MODULES)
def test_each_documented_python_m_command_runs(module, tmp_path):
    """Every ``python -m segattn...`` the docs name starts, with no warning (the package's registration loop
    leaves the module to runpy, so it is neither imported twice nor registers its classes twice); the generators
    write a small set as documented."""
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr[-2000:]
    if module.startswith("segattn.data."):
        out = tmp_path / "set"
        proc = subprocess.run([sys.executable, "-m", module, "--root", str(out), "--train", "2", "--val", "1"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0 and f"ready in {out}" in proc.stdout, proc.stderr[-2000:]
        assert len([p for p in out.rglob("*.png")]) >= 3
