"""SIGTERM during training: noted, acted on between steps (the step under way finishes, last.pth is written)."""
import signal
import threading
from contextlib import contextmanager

from ..errors import RunError


class Preempted(RunError):
    """SIGTERM: the run wrote last.pth after the step under way and stopped."""


class _Signalled:
    """Falsy until a signal arrives; then truthy, with the signal's ``name``."""

    name = None

    def __bool__(self):
        return self.name is not None


@contextmanager
def preemption_signal():
    """SIGTERM noted (not acted on mid-step) while the block runs; the previous handler restored after.

    Only the main thread may install handlers: elsewhere (a notebook's worker thread) nothing is caught.
    """
    signalled = _Signalled()
    if threading.current_thread() is not threading.main_thread():
        yield signalled
        return

    def note(signum, frame):
        signalled.name = signal.Signals(signum).name
    previous = signal.signal(signal.SIGTERM, note)
    try:
        yield signalled
    finally:
        signal.signal(signal.SIGTERM, previous)
