#!/usr/bin/env python
"""The demo table: each head trained from scratch on the procedural demo data, as the README's first run.

    python benchmarks/demo.py                      # every registered head with a demo config, and the floor

Each row is ``python tools/train.py configs/demo/<head>.yaml --no-progress``
run as a user runs it, one after the other, from an empty demo data folder
(generation included in the wall time), its checkpoints and logs in a
temporary folder; the val mIoU is the one the command prints last. The floor
is ``python tools/colour_floor.py configs/demo/ccnet.yaml`` on the same data.
"""
import argparse
import subprocess
import sys
import tempfile

from _common import ROOT, demo_heads, timed, write_results
from segattn.models import HEADS


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):d} s" if seconds >= 60 else f"{round(seconds)} s"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--heads", default=",".join(demo_heads()))
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run (a shorter schedule, say)")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        common = [f"data.root={tmp}/demo", f"train.out_dir={tmp}/checkpoints", f"train.log_dir={tmp}/runs",
                  *args.overrides]
        for i, head in enumerate(args.heads.split(",")):
            if i:  # each run from an empty data folder, as a first run is
                subprocess.run(["rm", "-rf", f"{tmp}/demo"], check=True)
            config = f"configs/demo/{head}.yaml"
            print(f"[cpu] {config} ...", file=sys.stderr, flush=True)
            miou, seconds = timed([sys.executable, "tools/train.py", config, "--no-progress", *common], ROOT)
            title = HEADS[head].title or head if head in HEADS else head
            rows.append({"name": f"{title} (`{config}`)", "head": head, "config": config, "miou": miou,
                         "seconds": seconds})
        print("[cpu] colour-only floor ...", file=sys.stderr, flush=True)
        miou, seconds = timed([sys.executable, "tools/colour_floor.py", "configs/demo/ccnet.yaml", "--no-progress",
                               *common], ROOT)
        rows.append({"name": "colour-only floor (`tools/colour_floor.py configs/demo/ccnet.yaml`)", "miou": miou,
                     "seconds": seconds})
    lines = ["| head | demo val mIoU | wall time |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['miou']:.2f} | {minutes(r['seconds'])} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    write_results("demo", "cpu", rows, table, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
