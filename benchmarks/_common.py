"""What every benchmark script shares: the results file it writes, and the few arguments they all take.

Each script answers one question and writes
``benchmarks/results/<question>-<device>-torch<version>-<commit>.{json,md}``
(timm's results naming): the JSON holds the rows and how they were taken
(command, machine, date, commit, torch), the Markdown the table the docs copy.
A tree with uncommitted changes gets ``-dirty`` after the commit: such a file
describes no commit and is not one the docs may quote.
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def demo_heads() -> list:
    """Every registered head that has ``configs/demo/<head>.yaml``, in registry order."""
    from segattn.models import HEADS

    return [name for name in HEADS if os.path.isfile(os.path.join(ROOT, "configs", "demo", f"{name}.yaml"))]


def commit() -> str:
    """The short commit of the tree, ``-dirty`` if tracked files differ from it; ``unknown`` outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)

    head = git("rev-parse", "--short=7", "HEAD")
    if head.returncode:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + ("-dirty" if dirty else "")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    """What the numbers were measured on."""
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}
    if device.startswith("cuda") and torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    return info


def device_slug(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return "cpu"


def write_results(question: str, device: str, rows, table: str, extra: dict = None, output: str = None) -> str:
    """Write ``<question>-<device>-torch<ver>-<commit>.json`` and ``.md`` under ``output``; returns the JSON path."""
    output = output or RESULTS
    os.makedirs(output, exist_ok=True)
    version = torch.__version__.split("+")[0]
    stem = f"{question}-{device_slug(device)}-torch{version}-{commit()}"
    meta = {"question": question, "command": " ".join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "machine": machine(device), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit()}
    with open(os.path.join(output, stem + ".json"), "w") as f:
        json.dump({**meta, **(extra or {}), "rows": rows}, f, indent=2, default=str)
    m = meta["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads"
    with open(os.path.join(output, stem + ".md"), "w") as f:
        f.write(f"`{meta['command']}`\n\n{table.strip()}\n\n"
                f"{where}; torch {m['torch']}; {meta['date'][:10]}; commit {meta['commit']}\n")
    print(f"\nwrote {os.path.join(output, stem)}.json and .md", file=sys.stderr)
    return os.path.join(output, stem + ".json")


def timed(cmd, cwd: str = ROOT) -> tuple:
    """Run ``cmd`` as a user runs it; ``(the last mIoU it printed, wall seconds)``, or exit with its output."""
    import time

    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    found = re.findall(r"mIoU ([\d.]+)", proc.stdout + proc.stderr)
    if not found:
        raise SystemExit(f"{' '.join(cmd)} printed no mIoU:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return float(found[-1]), seconds


def add_common_args(parser, repeats: int = 3):
    parser.add_argument("--repeats", type=int, default=repeats, help="timed runs per row (the median is kept)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--output", default=None, help="folder for the results files (default benchmarks/results)")
    return parser
