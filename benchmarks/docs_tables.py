#!/usr/bin/env python
"""Write the docs' tables: results files copied, and the tables of what is registered, generated.

    python benchmarks/docs_tables.py            # fill every block of README.md and docs/*.md
    python benchmarks/docs_tables.py --check    # exit 1 where a block differs from what it would be

Two kinds of block, each from its opening comment to its closing one:

* ``<!-- results: NAME.md -->`` ... ``<!-- end results -->``: NAME is a file of
  ``benchmarks/results/`` that a benchmark script wrote, so a figure in the docs
  is always one a program measured, with its command, machine, date and commit;
* ``<!-- generated: NAME -->`` ... ``<!-- end generated -->``: a table made by
  :data:`GENERATORS` from the registries (every head's and block's options and
  maps, read from their classes), the configs and the results files, so adding
  a head or a block is one file and a config, then this script.
"""
import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- results: (?P<name>[^ ]+\.md) -->\n)(?P<body>.*?)(<!-- end results -->)", re.S)
GENERATED = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _summary(cls) -> str:
    """The first line of ``cls``'s docstring, else of its module's (a head's or block's paper, by the house style)."""
    doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def _value(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _options(registry, name) -> str:
    options = registry.options(name)
    return ", ".join(f"`{k}: {_value(v)}`" for k, v in options.items()) or "none"


def heads_table() -> str:
    """Every registered head: what it is, its options with their defaults, its maps, mmsegmentation's name."""
    from segattn.models import HEADS

    lines = ["| head | what it is | options (the papers' defaults) | attention maps | mmsegmentation |",
             "|---|---|---|---|---|"]
    for name in HEADS:
        cls = HEADS[name]
        maps = ", ".join(f"`{kind}`" for kind in cls.map_kinds) or "none"
        lines.append(f"| `{name}` | {_summary(cls)} | {_options(HEADS, name)} | {maps} | "
                     f"{f'`{cls.mmseg_type}`' if cls.mmseg_type else '—'} |")
    return "\n".join(lines)


def blocks_table() -> str:
    """Every registered attention block: what it is, its options with their defaults."""
    from segattn.models import ATTENTION

    lines = ["| name | block | options (the papers' defaults) |", "|---|---|---|"]
    lines += [f"| `{name}` | {_summary(ATTENTION[name])} | {_options(ATTENTION, name)} |" for name in ATTENTION]
    return "\n".join(lines)


def map_kinds_table() -> str:
    """The one table of map kinds: what a head returns, the views drawn (with their titles), the heads using it."""
    from segattn.models import HEADS
    from segattn.models.maps import MAP_KINDS

    lines = ["| kind | what it shows | views drawn (their titles) | heads |", "|---|---|---|---|"]
    for kind, spec in MAP_KINDS.items():
        views = "; ".join(f"`{view}`: {title}" for view, title in spec.views.items())
        heads = ", ".join(HEADS[h].title or h for h in HEADS if kind in HEADS[h].map_kinds) or "—"
        lines.append(f"| `{kind}` | {spec.summary} | {views} | {heads} |")
    return "\n".join(lines)


def demo_rows() -> dict:
    """``{demo config: results row}`` of the demo results files docs/benchmarks.md cites (the first citing wins);
    each row also holds its file's ``machine`` and ``file`` name."""
    import json

    with open(os.path.join(ROOT, "docs", "benchmarks.md")) as f:
        cited = re.findall(r"<!-- results: (demo-[^ ]+)\.md -->", f.read())
    rows = {}
    for name in cited:
        with open(os.path.join(ROOT, "benchmarks", "results", name + ".json")) as f:
            results = json.load(f)
        for row in results["rows"]:
            config = re.search(r"`(configs/demo/\w+\.yaml)`", row["name"])
            rows.setdefault(config.group(1) if config else row["name"], {**row, "machine": results["machine"],
                                                                         "file": name + ".json"})
    return rows


def first_run() -> str:
    """The README's sentence on how long its first command takes: the demo CCNet's wall time in the results file,
    with that file's machine."""
    row = demo_rows()["configs/demo/ccnet.yaml"]
    minutes, seconds = divmod(round(row["seconds"]), 60)
    machine = row["machine"]
    return (f"This run took {minutes} min {seconds} s on a {machine['cores']}-core {machine['cpu']} with "
            f"{machine['torch_threads']} torch threads (`benchmarks/results/{row['file']}`, written by "
            "`python benchmarks/demo.py`); the demo's `train.amp: auto` trains in bf16 autocast where the CPU has "
            "native bf16, else in float32.")


def results_table() -> str:
    """The README's table: per registered head with a demo result (results files), its demo mIoU and
    mmsegmentation's published Cityscapes figure of the ResNet-50 D8 80k model (the configs/mmseg header; a head
    with none, its Cityscapes 80k model); the
    heads not yet run on the demo (or without a demo config) in one line after it, so the README keeps its length
    as heads are added."""
    from segattn.interop.zoo import zoo_rows
    from segattn.models import HEADS

    demo = demo_rows()
    zoo = {row["name"]: row for row in zoo_rows(os.path.join(ROOT, "configs", "mmseg"))}
    lines = ["| head | demo val mIoU (2 CPU cores) | mmseg Cityscapes val mIoU | released-model config |",
             "|---|---|---|---|"]
    not_run = []
    for name in HEADS:
        config = f"configs/demo/{name}.yaml"
        title = HEADS[name].title or name
        # the R-50 769 80k model; for a head released otherwise (OCRNet: R-101, 512x1024) its Cityscapes 80k one
        released = zoo.get(f"{name}_r50-d8_769x769_80k_cityscapes") or next(
            (r for n, r in sorted(zoo.items()) if n.startswith(f"{name}_r") and re.search(r"_80k_.*cityscapes$", n)),
            None)
        row = demo.get(config)
        if row is None:
            has_demo = os.path.isfile(os.path.join(ROOT, config))
            not_run.append(f"{title} (`{config}`)" if has_demo else f"{title} (no demo config)")
            continue
        published = (released["ss"], f"`configs/mmseg/{released['name']}.yaml`") if released else ("—", "—")
        lines.append(f"| {title} (`{config}`) | {row['miou']:.2f} | {published[0]} | {published[1]} |")
    if not_run:
        lines += ["", "Not yet run by `benchmarks/demo.py`: " + ", ".join(not_run) + "."]
    return "\n".join(lines)


def layout() -> str:
    """The package's folders and their modules, as the files are (docs/extending.md's layout)."""
    lines = ["```"]
    for folder in ["segattn"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "segattn", "*/"))
                                       if not os.path.basename(p.rstrip("/")).startswith("__")):
        folder = folder.rstrip("/")
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, folder, "*.py"))
                       if not p.endswith("__init__.py"))
        subs = sorted(os.path.basename(p.rstrip("/")) + "/" for p in glob.glob(os.path.join(ROOT, folder, "*/"))
                      if not os.path.basename(p.rstrip("/")).startswith("__"))
        lines.append(f"{folder + '/':<22}" + _wrapped(names + (subs if folder != "segattn" else []), 22))
    for folder in ("tools", "benchmarks"):
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, folder, "*.py")))
        lines.append(f"{folder + '/':<22}" + _wrapped(names, 22))
    lines.append("```")
    return "\n".join(lines)


def _wrapped(names, indent: int, width: int = 110) -> str:
    out, line = [], ""
    for name in names:
        if line and len(line) + len(name) + 2 > width - indent:
            out.append(line + ",")
            line = ""
        line = f"{line}, {name}" if line else name
    out.append(line)
    return ("\n" + " " * indent).join(out)


GENERATORS = {"heads": heads_table, "blocks": blocks_table, "map-kinds": map_kinds_table, "results": results_table,
              "first-run": first_run, "layout": layout}


def generate(text: str) -> str:
    """``text`` with every generated block's body made anew (ValueError naming an unknown generator)."""
    def fill(match):
        if match["name"] not in GENERATORS:
            raise ValueError(f"unknown generated block {match['name']!r}; known: {', '.join(GENERATORS)}")
        return match[1] + GENERATORS[match["name"]]().strip() + "\n" + match[4]
    return GENERATED.sub(fill, text)


def render(text: str, results: str) -> str:
    """``text`` with every block's body replaced by its results file (ValueError naming a missing file)."""
    def fill(match):
        path = os.path.join(results, match["name"])
        if not os.path.isfile(path):
            raise ValueError(f"the docs cite {match['name']}, which is not in {results}")
        with open(path) as f:
            return match[1] + f.read().strip() + "\n" + match[4]
    return BLOCK.sub(fill, text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    stale = []
    for page in PAGES:
        with open(page) as f:
            text = f.read()
        new = generate(render(text, os.path.join(ROOT, "benchmarks", "results")))
        if new != text:
            stale.append(os.path.relpath(page, ROOT))
            if not args.check:
                with open(page, "w") as f:
                    f.write(new)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python benchmarks/docs_tables.py")
        return 1
    print(("filled: " + ", ".join(stale)) if stale else "every results block is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
