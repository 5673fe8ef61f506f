#!/usr/bin/env python
"""The atlas: every registered head and attention block on both context probes, reach against cost.

    python benchmarks/atlas.py                      # every head and block, both probes, seeds 0, 1, 2
    python benchmarks/atlas.py --entries fcn,ccnet,se --seeds 0 train.max_iters=350
    python benchmarks/atlas.py --plot benchmarks/results/atlas-....json   # the picture again, from a results file
    python benchmarks/atlas.py --seeds 0,1,2 --reuse benchmarks/results/atlas-....json   # run only the missing seeds

The entries come from the registries, nothing listed here: each segattn head on
the probe recipe (``configs/probe/base.yaml`` with ``model.head`` set), and
each block in front of the FCN head (``model.context_block``, as
``tools/compare.py`` runs ``configs/probe`` configs). Every entry trains on the
first probe (one key: accuracy on the key's rows and columns, and elsewhere)
and on the two-key probe (object accuracy; 50% is what a global summary can
reach), once per seed, with :func:`segattn.analysis.compare.compare_row`.
Parameters, forward FLOPs, the head's saved activations and the step time come
from the first probe's run (the same model). The demo mIoU column is the demo
results files' (docs/benchmarks.md cites them) where the entry has a demo
config, else empty. The results file holds every run; its table gives each
entry's mean (min-max) over the seeds, and the picture (``--figure``) plots
reach against cost, each entry coloured by the survey's family of its head or
block (``family`` on its class).

A full run takes hours on a CPU; ``--reuse`` takes the runs an earlier
results file holds (same entry, probe and seed, same overrides, same CPU)
instead of repeating them, and marks each such row with the commit it was
measured at.
"""
import argparse
import json
import os
import sys
import tempfile
import time

from _common import ROOT, commit, cpu_name, write_results

FAMILY_COLOURS = {"channel": "#1f77b4", "regions": "#2ca02c", "both": "#9467bd", "self-attention": "#d62728",
                  "none": "#7f7f7f"}


def entries() -> list:
    """``[(name, overrides, family)]``: segattn's heads, then each block on the FCN head, in registry order."""
    from segattn.models import ATTENTION, HEADS

    out = [(name, [f"model.head={{type: {name}}}"], HEADS[name].family or "none")
           for name in HEADS if HEADS[name].__module__.startswith("segattn.")]
    out += [(f"fcn+{name}", [f"model.context_block={name}"], getattr(ATTENTION[name], "family", None) or "none")
            for name in ATTENTION if ATTENTION[name].__module__.startswith("segattn.")]
    return out


def demo_mious() -> dict:
    """``{entry: demo val mIoU}`` from the demo results files the docs cite (heads: configs/demo/<head>.yaml)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from docs_tables import demo_rows

    out = {}
    for config, row in demo_rows().items():
        name = os.path.basename(config)[:-5] if config.startswith("configs/demo/") else None
        if name:
            out[name] = row["miou"]
    return out


def reused_rows(path: str, overrides: list) -> dict:
    """``{(name, probe, seed): row}`` from an earlier atlas results file, each row marked with its commit; the file
    must have been run with the same overrides on the same CPU (its runs are then the ones this run would repeat)."""
    with open(path) as f:
        old = json.load(f)
    if old.get("question") != "atlas":
        raise SystemExit(f"--reuse {path}: not an atlas results file (question {old.get('question')!r})")
    old_overrides = old.get("overrides", [t for t in old["command"].split()[2:] if "=" in t and not t.startswith("-")])
    if old_overrides != list(overrides):
        raise SystemExit(f"--reuse {path}: its runs had overrides {old_overrides}, this run {list(overrides)}; "
                         "reuse a file run with the same overrides")
    if old["machine"]["cpu"] != cpu_name():
        raise SystemExit(f"--reuse {path}: measured on {old['machine']['cpu']!r}, this machine is {cpu_name()!r}; "
                         "its step times would not compare: rerun those seeds here")
    return {(r["name"], r["probe"], r["seed"]): dict(r, commit=r.get("commit", old["commit"])) for r in old["rows"]}


def run(args) -> dict:
    from segattn.analysis.compare import compare_row, with_seed
    from segattn.configure import load_tool_config

    chosen = [e for e in entries() if not args.entries or e[0] in args.entries.split(",")]
    unknown = set(args.entries.split(",")) - {e[0] for e in chosen} if args.entries else set()
    if unknown:
        raise SystemExit(f"--entries: no entry {', '.join(sorted(unknown))}; entries: "
                         f"{', '.join(e[0] for e in entries())}")
    reuse = reused_rows(args.reuse, args.overrides) if args.reuse else {}
    rows, reused, start, here = [], [], time.perf_counter(), commit()
    base = os.path.join(ROOT, "configs", "probe", "base.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        probes = {"keys": [f"data.root={tmp}/context_probe"],
                  "pairs": ["data.dataset=context_probe_pairs", f"data.root={tmp}/context_probe_pairs"]}
        for name, overrides, family in chosen:
            for probe, data in probes.items():
                for seed in (int(s) for s in args.seeds.split(",")):
                    if (name, probe, seed) in reuse:
                        rows.append(reuse[(name, probe, seed)])
                        reused.append(rows[-1]["commit"])
                        continue
                    cfg = load_tool_config(base, [*overrides, *data, f"train.experiment=atlas_{name}_{probe}",
                                                  f"train.out_dir={tmp}/checkpoints", f"train.log_dir={tmp}/runs",
                                                  *args.overrides])
                    print(f"[cpu] {name} on the {probe} probe, seed {seed} ...", file=sys.stderr, flush=True)
                    row = compare_row(with_seed(cfg, seed), name)
                    rows.append(dict(row, probe=probe, family=family, commit=here))
    return {"rows": rows, "total_s": time.perf_counter() - start, "reused": reused}


def _stats(values):
    import numpy as np

    values = np.asarray(values, float)
    return float(values.mean()), float(values.min()), float(values.max())


def summary(rows: list, demo: dict) -> list:
    """Per entry: family, reach on both probes (mean, min, max over seeds), demo mIoU and its cost."""
    out = []
    for name in dict.fromkeys(r["name"] for r in rows):
        keys = [r for r in rows if r["name"] == name and r["probe"] == "keys"]
        pairs = [r for r in rows if r["name"] == name and r["probe"] == "pairs"]
        first = keys[0] if keys else pairs[0]
        out.append({"name": name, "family": first["family"],
                    "row_column": _stats([r["row_column"] for r in keys]) if keys else None,
                    "elsewhere": _stats([r["elsewhere"] for r in keys]) if keys else None,
                    "objects": _stats([r["objects"] for r in pairs]) if pairs else None,
                    "demo": demo.get(name), "params_m": first["params_m"], "gflops": first["gflops"],
                    "head_mb": first["head_mb"], "step_s": _stats([r["step_s"] for r in keys or pairs])[0],
                    "seeds": len(keys or pairs)})
    return out


def markdown(entries_: list) -> str:
    def cell(stat):
        if stat is None:
            return "—"
        mean, low, high = (100 * v for v in stat)
        return f"{mean:.1f}" if low == high else f"{mean:.1f} ({low:.1f}–{high:.1f})"

    lines = ["| entry | family | probe 1: row/column % | probe 1: elsewhere % | probe 2: objects % | demo mIoU | "
             "params (M) | GFLOPs | head act. MB | step s |", "|" + "---|" * 10]
    for e in entries_:
        demo = "—" if e["demo"] is None else f"{e['demo']:.2f}"
        lines.append(f"| {e['name']} | {e['family']} | {cell(e['row_column'])} | {cell(e['elsewhere'])} | "
                     f"{cell(e['objects'])} | {demo} | {e['params_m']:.2f} | {e['gflops']:.2f} | {e['head_mb']:.1f} | "
                     f"{e['step_s']:.2f} |")
    seeds = max(e["seeds"] for e in entries_)
    lines.append(f"\n{seeds} seed(s) per entry and probe: mean (min–max). Chance is 25%; on probe 2 a global "
                 "summary of the image reaches 50% at best.")
    return "\n".join(lines)


def _label(fig, ax, points, taken=()):
    """Each point's name where it overlaps no earlier label, no point, no error bar and nothing in ``taken``
    (the reference lines' texts): candidate offsets around the point, nearest first, a thin line to a label set
    farther out; where none is clear, the candidate that overlaps least."""
    import math

    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    dots = [ax.transData.transform((x, y)) for _, x, y in points]
    bars = [line.get_window_extent(renderer) for line in ax.lines + [c for c in ax.collections]]
    taken = list(taken)
    offsets = [(round(r * math.cos(a)), round(r * math.sin(a))) for r in (6, 12, 20, 30, 42, 56, 72, 90, 110, 135)
               for a in (math.pi * k / 8 for k in (0, 8, 4, 12, 2, 6, 10, 14, 1, 7, 9, 15, 3, 5, 11, 13))]

    def overlap(box, other):
        w = min(box.x1, other.x1) - max(box.x0, other.x0)
        h = min(box.y1, other.y1) - max(box.y0, other.y0)
        return max(w, 0) * max(h, 0)

    for (name, x, y), dot in sorted(zip(points, dots), key=lambda p: (p[0][2], p[0][1])):
        best = None
        for dx, dy in offsets:
            text = ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                               ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top",
                               arrowprops=dict(arrowstyle="-", lw=0.4, color="#888888") if abs(dx) + abs(dy) > 10
                               else None)
            text.update_positions(renderer)  # the words' own box (an annotation's extent spans its leader line too)
            box = Text.get_window_extent(text, renderer).expanded(1.2, 1.4)
            if not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1):
                text.remove()
                continue
            cost = (10 * sum(overlap(box, other) for other in taken)
                    + sum(overlap(box, bar) for bar in bars if bar.width < 20)
                    + 10000 * sum(box.contains(px, py) for px, py in dots) + abs(dx) + abs(dy))
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost <= abs(dx) + abs(dy):  # clear of everything: the nearest clear place
                break
        if best is not None:
            taken.append(best[2])


def figure(entries_: list, path: str, title: str):
    """Reach against cost: probe 2's object accuracy and probe 1's elsewhere accuracy (y) against the head's saved
    activations (x), one point per entry, coloured by family, the seeds' range as bars, each point labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(16, 7), sharex=True)
    panels = []
    for ax, key, label in ((axes[0], "objects", "probe 2 (two keys): object accuracy %"),
                           (axes[1], "elsewhere", "probe 1: accuracy off the key's rows and columns %")):
        ax.set_xscale("log")
        ax.set_ylim(0, 104)
        points = []
        for e in entries_:
            if e[key] is None:
                continue
            mean, low, high = (100 * v for v in e[key])
            colour = FAMILY_COLOURS.get(e["family"], "#000000")
            ax.errorbar(e["head_mb"], mean, yerr=[[mean - low], [high - mean]], fmt="o", color=colour, capsize=3)
            points.append((e["name"], e["head_mb"], mean))
        lines = [(25, ":", "chance")] + ([(50, "--", "a global summary's bound")] if key == "objects" else [])
        texts = []
        for y, style, words in lines:  # their words mid-axis (the log axis' empty middle), kept clear of labels
            ax.axhline(y, color="#999999", lw=0.8, ls=style)
            texts.append(ax.text(0.5, y + 0.5, words, fontsize=7, color="#666666", ha="center",
                                 transform=ax.get_yaxis_transform()))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("head's saved activations for backward, MB per image (log)")
        ax.set_ylabel(label)
        panels.append((ax, points, texts))
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))  # before the labels: they are placed in the final layout's pixels
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax, points, texts in panels:
        _label(fig, ax, points, [t.get_window_extent(renderer).expanded(1.1, 1.2) for t in texts])
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=f) for f, c in FAMILY_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", default="", help="comma list of entries (default: every head and block)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    p.add_argument("--figure", default=os.path.join(ROOT, "docs", "atlas.png"), help="where the picture goes")
    p.add_argument("--plot", metavar="RESULTS.json", help="draw the picture from a results file, run nothing")
    p.add_argument("--reuse", metavar="RESULTS.json", help="take the runs this earlier results file holds (same "
                   "overrides, same CPU) instead of repeating them")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every run (a shorter schedule, say)")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    if args.plot:
        with open(args.plot) as f:
            result = json.load(f)
        figure(result["entries"], args.figure, f"{os.path.basename(args.plot)}")
        print(f"wrote {args.figure}")
        return 0
    result = run(args)
    entries_ = summary(result["rows"], demo_mious())
    reused = result.pop("reused")
    table = markdown(entries_) + f" {len(result['rows']) - len(reused)} runs in {result['total_s'] / 60:.1f} min"
    if reused:
        table += (f", {len(reused)} reused from {os.path.basename(args.reuse)} (commit "
                  f"{', '.join(sorted(set(reused)))})")
    table += "."
    print(table)
    path = write_results("atlas", "cpu", result["rows"], table, extra={"entries": entries_, "total_s": result["total_s"],
                                                                       "overrides": args.overrides},
                         output=args.output)
    figure(entries_, args.figure, os.path.basename(path))
    print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
