"""Importing mmcv-lite's ``mmcv.ops`` (and so mmsegmentation) without mmcv's compiled extension.

mmcv-lite is mmcv without ``mmcv._ext``; ``mmcv.ops`` imports it at once, though
the modules CCNet, DANet, Non-local and FCN use never call it. Install::

    pip install -e ".[interop]"
    pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2

(``--no-deps``: they ask for opencv-python, which would shadow the headless
OpenCV this package uses; ``.[interop]`` lists their other needs.)
"""
import importlib.machinery
import sys
import types

INSTALL = 'pip install -e ".[interop]" && pip install --no-deps mmcv-lite==2.1.0 mmengine==0.10.7 mmsegmentation==1.2.2'


class _MissingExtension(types.ModuleType):
    """``mmcv._ext`` for mmcv-lite: any compiled op it is asked for fails when called, not when imported."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name}: compiled mmcv ops are not available in mmcv-lite")
        return missing


def stub_mmcv_ext():
    """Let ``mmcv.ops`` import under mmcv-lite (a real ``mmcv._ext``, if installed, is kept)."""
    try:
        import mmcv._ext  # noqa: F401
    except ImportError:
        stub = _MissingExtension("mmcv._ext")
        # a spec without a loader: mmengine's mmcv_full_available() (asked by its Runner) then answers False
        stub.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
        sys.modules["mmcv._ext"] = stub
