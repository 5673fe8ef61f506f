import os
import sys

import torch

# Triton kernels run on CPU tensors through the interpreter; it must be chosen
# before any kernel is defined, so set it before the package is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))

# Under pytest-xdist every worker, and every tool a test starts, would run torch with one thread per core: on
# 2 cores, 2 workers x 2 threads contend for them. The workers share the cores instead (the tools a test runs
# inherit the variable); a thread count given in the environment is kept.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import pytest  # noqa: E402

import toys  # noqa: E402,F401 - registers a toy head and a toy dataset before any test module is collected


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


_STDERR = []  # the terminal's stderr, duplicated before a test's output capture replaces it


def pytest_configure(config):
    _STDERR.append(os.dup(sys.stderr.fileno()))
    record = os.environ.get("SEGATTN_WORKER_PIDS")  # CI's list of the test processes, to read a crash against
    if record:
        with open(record, "a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {os.getpid()}\n")


@pytest.fixture(autouse=True)
def _stacks_on_sigterm():
    """A SIGTERM that ends a test process prints every thread's stack to the terminal first: pytest-xdist only
    says that a worker "crashed", and says the same for a segfault (which prints its stack through pytest's own
    faulthandler, unless the signal cannot be delivered at all: .ci/signals then shows it) and for SIGKILL (the
    OOM killer's, which nothing can print). Set before each test: a test that
    installs its own handler and restores the default one drops it."""
    import faulthandler
    import signal

    if _STDERR and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        faulthandler.register(signal.SIGTERM, file=_STDERR[0], all_threads=True, chain=True)
    yield


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from helpers import tiny_demo

    return tiny_demo(tmp_path_factory.mktemp("data"))
