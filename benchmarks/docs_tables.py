#!/usr/bin/env python
"""Copy results tables into the docs: every ``<!-- results: FILE.md -->`` block gets that results file's text.

    python benchmarks/docs_tables.py            # fill every block of docs/*.md from benchmarks/results/
    python benchmarks/docs_tables.py --check    # exit 1 where a block differs from its file

A block runs from ``<!-- results: NAME.md -->`` to ``<!-- end results -->``;
NAME is a file of ``benchmarks/results/`` that a benchmark script wrote, so a
figure in the docs is always one a program measured, with its command,
machine, date and commit beside it.
"""
import argparse
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- results: (?P<name>[^ ]+\.md) -->\n)(?P<body>.*?)(<!-- end results -->)", re.S)


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
    for page in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(page) as f:
            text = f.read()
        new = render(text, os.path.join(ROOT, "benchmarks", "results"))
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
