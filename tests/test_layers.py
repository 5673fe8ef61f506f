"""The package's layers point one way: nothing imports the tools' cli.py, inference never loads the training loop,
and no module holds two ideas' worth of lines."""
import ast
import glob
import os
import subprocess
import sys

from helpers import ROOT

MODULES = sorted(glob.glob(os.path.join(ROOT, "segattn", "**", "*.py"), recursive=True))


def imported_names(path):
    """Every module an ``import`` or ``from ... import`` of the file names, relative ones resolved."""
    package = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_nothing_in_the_package_imports_cli():
    offenders = [os.path.relpath(p, ROOT) for p in MODULES
                 if not p.endswith(os.path.join("segattn", "cli.py")) and "segattn.cli" in imported_names(p)]
    assert not offenders


def test_inference_loads_nothing_of_the_training_loop():
    """What a deployed model or the Python API runs, imported in a fresh process: the training loop and its run
    folder, signals and optimiser never load, nor cli.py."""
    code = ("import sys; import segattn.engine.segmenter, segattn.engine.predictor, segattn.engine.evaluator, "
            "segattn.deploy.export, segattn.analysis.explorer, segattn.analysis.attention_maps; "
            "print(sorted(m for m in sys.modules if m.startswith('segattn.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(eval(proc.stdout.strip().splitlines()[-1]))
    training = {"segattn.engine.trainer", "segattn.engine.optim", "segattn.engine.run_folder", "segattn.engine.signals",
                "segattn.cli"}
    assert not loaded & training, loaded & training


def test_no_module_holds_two_ideas():
    sizes = {os.path.relpath(p, ROOT): sum(1 for _ in open(p)) for p in MODULES}
    assert max(sizes.values()) < 450, max(sizes.items(), key=lambda kv: kv[1])
