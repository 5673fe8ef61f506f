"""``eval.compile``: ``torch.compile`` for the tools' inference over many images (off | on | auto).

The model is compiled with Inductor's freezing: its weights become constants,
so BatchNorm folds into the convolutions and oneDNN prepacks their weights
(the tools never change the weights of a model they evaluate). Compiling costs
seconds once and saves a few percent on every image after it
(``benchmarks/compiled_eval.py`` measures both, labels included), so it pays
on long runs only. ``auto`` decides from the run itself:
it times the second image eagerly (the first one warms up) and compiles when
the images left, at that time each and :data:`EXPECTED_GAIN`, would save more
than :data:`EXPECTED_COMPILE_S`. ``on`` compiles from the first image. Where
compiling fails (on any image: a new size compiles again), ``on`` stops with
one line saying so, ``auto`` goes on eagerly.

The training loop's validation never compiles: the weights it evaluates change
between validations, and its model is the one being trained.
"""
import logging
import sys
import time

import torch
from tqdm import tqdm

from ..config import COMPILE_MODES
from ..errors import ConfigError, first_line

log = logging.getLogger(__name__)

# what ``auto`` assumes, from benchmarks/compiled_eval.py's results (docs/deployment.md): about the median gain
# it measured (0.99-1.04x) and its longest compile (a process's first, which pays Inductor's own start-up). So
# auto compiles when the rest of the run would take over ~17 minutes eagerly, and where compiling gains nothing
# it has lost at most 2% of such a run.
EXPECTED_GAIN = 1.02
EXPECTED_COMPILE_S = 20.0
OPTIONS = {"freezing": True}


class CompileFailed(ConfigError):
    """``eval.compile=on`` and ``torch.compile`` failed on the first image."""


def say(line: str):
    """One line on stderr that a progress bar does not break."""
    tqdm.write(line, file=sys.stderr)


def compiler_error(err: Exception) -> bool:
    """Whether ``err`` is Dynamo's or Inductor's (a compile that failed), not the model's or the data's."""
    return (isinstance(err, torch._dynamo.exc.TorchDynamoException)
            or type(err).__module__.startswith(("torch._dynamo", "torch._inductor")))


def worth_compiling(images_left: int, eager_s: float, gain: float = EXPECTED_GAIN,
                    compile_s: float = EXPECTED_COMPILE_S) -> bool:
    """Whether ``images_left`` images at ``eager_s`` each save more than ``compile_s`` at ``gain``."""
    return images_left * eager_s * (1 - 1 / gain) > compile_s


class EvalCompile:
    """Runs each image's inference on the eager model or its compiled form, as ``mode`` says.

    ``run(fn)`` calls ``fn(model)`` with the model to use now and returns its
    result; ``images`` is how many calls the run will make (one per image).
    ``compile_s`` is set after the first compiled image: its time, less the
    eager time where one was measured (the compile time, as near as one run
    tells).
    """

    def __init__(self, model, mode: str, images: int):
        if mode not in COMPILE_MODES:
            raise ConfigError(f"eval.compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
        self.eager, self.model, self.mode = model, model, mode
        self.left, self.seen, self.eager_s = images, 0, None
        self.compiled = self.gave_up = False
        self.compile_s = None
        if mode == "on":
            self._compile()

    def _compile(self):
        self.model, self.compiled = torch.compile(self.eager, options=OPTIONS), True

    def run(self, fn):
        first_compiled = self.compiled and self.compile_s is None
        start = time.perf_counter()
        try:
            out = fn(self.model)
        except Exception as err:  # noqa: BLE001 - the compiler's errors surface from a compiled call
            if not (self.compiled and compiler_error(err)):
                raise  # an image's own failure (unreadable, ...): its caller's to report
            inner = getattr(err, "inner_exception", None) or err
            reason = f"{type(inner).__name__}: {first_line(inner)}"
            if self.mode == "on":
                raise CompileFailed(f"eval.compile=on: torch.compile failed: {reason}; set eval.compile=off (or "
                                    "auto) to run eagerly") from None
            log.warning("eval.compile=auto: torch.compile failed (%s); going on eagerly", reason)
            self.model, self.compiled, self.gave_up = self.eager, False, True
            out = fn(self.model)
        seconds = time.perf_counter() - start
        self.seen, self.left = self.seen + 1, self.left - 1
        if first_compiled and self.compiled:
            self.compile_s = max(seconds - (self.eager_s or 0.0), 0.0)
            say(f"eval.compile={self.mode}: compiled in {self.compile_s:.1f} s (the first compiled image's time"
                f"{' less an eager one' if self.eager_s else ''})")
        elif not self.compiled and self.mode == "auto" and self.seen == 2 and not self.gave_up:
            self.eager_s = seconds
            if worth_compiling(self.left, seconds):
                say(f"eval.compile=auto: {self.left} images left at {seconds:.2f} s each: compiling")
                self._compile()
        return out
