"""``eval.compile``: tools/eval.py and tools/infer.py compiled as a user runs them, and when ``auto`` compiles."""
import os
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import run_tool, tiny_config
from segattn import build_model
from segattn.data.io import read_mask
from segattn.engine import compiled
from segattn.engine.compiled import CompileFailed, EvalCompile, worth_compiling


@pytest.fixture(scope="module")
def checkpoint(demo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compiled")
    cfg = tiny_config(demo_root, tmp, head="ccnet")
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True))
    path = tmp / "best.pth"
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, path)
    return path


def test_eval_and_infer_compiled_give_eager_labels(checkpoint, demo_root, tmp_path):
    """The same predictions eager and compiled (a pixel may flip where two classes tie within float error), the
    compile time stated; an infer.py run compiled skips what an eager run wrote (compiling changes no label)."""
    for mode in ("off", "on"):
        proc = run_tool("eval.py", "--checkpoint", checkpoint, f"eval.compile={mode}", "--save-pred",
                        tmp_path / mode, "--no-progress")
        assert ("compiled in" in proc.stderr) == (mode == "on"), proc.stderr
    names = sorted(os.listdir(tmp_path / "off"))
    assert len(names) == 3 and names == sorted(os.listdir(tmp_path / "on"))
    eager = np.stack([read_mask(str(tmp_path / "off" / n)) for n in names])
    fast = np.stack([read_mask(str(tmp_path / "on" / n)) for n in names])
    assert (eager == fast).mean() > 0.99  # folded BatchNorm rounds otherwise: random weights have near-ties
    images = os.path.join(demo_root, "leftImg8bit", "val")
    run_tool("infer.py", "--checkpoint", checkpoint, "--input", images, "--recursive", "--output", tmp_path / "out",
             "--no-progress")
    proc = run_tool("infer.py", "--checkpoint", checkpoint, "eval.compile=on", "--input", images, "--recursive",
                    "--output", tmp_path / "out", "--no-progress")
    assert "0 images segmented" in proc.stdout and "3 skipped" in proc.stdout


class Slow(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.01)
        return x + 1


def fake_compile(calls, fail=None):
    def compile_(module, options=None):
        calls.append(module)

        def run(*args):
            if fail is not None:
                raise fail
            return module(*args) * 10
        return run
    return compile_


COMPILER_ERROR = torch._dynamo.exc.BackendCompilerFailed(
    lambda: None, RuntimeError("no C++ compiler found\n(the rest of a long trace)"), None)


@pytest.mark.parametrize("images, compiles", [(3, False), (10 ** 6, True)])
def test_auto_compiles_where_the_run_repays_it(monkeypatch, images, compiles):
    calls = []
    monkeypatch.setattr(compiled.torch, "compile", fake_compile(calls))
    pacer = EvalCompile(Slow(), "auto", images)
    outs = [pacer.run(lambda m: m(torch.zeros(1))).item() for _ in range(3)]
    assert len(calls) == int(compiles)
    assert outs == ([1, 1, 10] if compiles else [1, 1, 1])  # eager for two images, then as decided
    assert pacer.eager_s >= 0.01


def test_worth_compiling():
    assert worth_compiling(1000, 1.0, gain=1.05, compile_s=30)  # 1000 s eager saves 47.6 s
    assert not worth_compiling(600, 1.0, gain=1.05, compile_s=30)  # 28.6 s
    assert worth_compiling(1100, 1.0) and not worth_compiling(1000, 1.0)  # the defaults: ~17 eager minutes
    assert not worth_compiling(10 ** 9, 1.0, gain=1.0, compile_s=1)


def test_a_failing_compiler(monkeypatch):
    """``on`` stops with one line naming the fix; ``auto`` goes on eagerly with the same result; an error that is
    not the compiler's (an image's own) passes through as it is."""
    monkeypatch.setattr(compiled.torch, "compile", fake_compile([], fail=COMPILER_ERROR))
    with pytest.raises(CompileFailed, match=r"^eval.compile=on: torch.compile failed: RuntimeError: no C\+\+ "
                       r"compiler found; set eval.compile=off") as err:
        EvalCompile(Slow(), "on", 5).run(lambda m: m(torch.zeros(1)))
    assert "\n" not in str(err.value)
    pacer = EvalCompile(Slow(), "auto", 10 ** 6)
    assert [pacer.run(lambda m: m(torch.zeros(1))).item() for _ in range(4)] == [1, 1, 1, 1]
    assert pacer.compiled is False and pacer.gave_up
    monkeypatch.setattr(compiled.torch, "compile", fake_compile([], fail=ValueError("truncated image")))
    with pytest.raises(ValueError, match="truncated image"):
        EvalCompile(Slow(), "on", 5).run(lambda m: m(torch.zeros(1)))
