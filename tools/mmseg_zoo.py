#!/usr/bin/env python
"""Write configs/mmseg/README.md, the released-model table, from the configs' header lines.

    python tools/mmseg_zoo.py            # rewrite the page
    python tools/mmseg_zoo.py --check    # exit 1 if the page differs from what the configs say
"""
import argparse
import os

from segattn.cli import run

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "mmseg")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config-dir", default=CONFIGS)
    p.add_argument("--check", action="store_true", help="compare only; exit 1 where the page is out of date")
    args = p.parse_args(argv)
    from segattn.interop.zoo import zoo_markdown

    page, path = zoo_markdown(args.config_dir), os.path.join(args.config_dir, "README.md")
    if args.check:
        current = open(path).read() if os.path.isfile(path) else ""
        if current != page:
            print(f"{path} is out of date: run python tools/mmseg_zoo.py")
            return 1
        print(f"{path} is up to date")
        return 0
    with open(path, "w") as f:
        f.write(page)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run(main)
