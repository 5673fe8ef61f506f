import os
import sys

import torch

# Triton kernels run on CPU tensors through the interpreter; it must be chosen
# before any kernel is defined, so set it before the package is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

import toys  # noqa: E402,F401 - registers a toy head and a toy dataset before any test module is collected


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from helpers import tiny_demo

    return tiny_demo(tmp_path_factory.mktemp("data"))
