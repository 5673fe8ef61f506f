"""A run's folder, ``<train.out_dir>/<train.experiment>/``, and the lock that keeps it to one live run."""
import os
import platform

from ..errors import OutputError, RunError


def experiment_dir(cfg) -> str:
    return os.path.join(cfg.train.out_dir, cfg.train.experiment)


class RunLock:
    """``<experiment>/.lock``: held (an OS file lock, gone with its process) by the live run writing there.

    A second run on the same folder gets a RunError naming the holder's pid, instead of both writing
    last.pth, best.pth and TensorBoard events into one folder.
    """

    def __init__(self, folder: str):
        import fcntl

        self.fd = None  # set before anything can fail: __del__ then has nothing to close
        self.path = os.path.join(folder, ".lock")
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # the experiment folder a file, a full disk, no permission: before any work
            what = "is a file, not a folder" if os.path.isfile(folder) else f"cannot be written ({err.strerror})"
            raise OutputError(f"{folder} {what}; give another train.experiment or train.out_dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)  # once: this object never held it, so neither release() nor __del__ closes it again
            raise RunError(f"{folder} is in use by a live run ({holder}); wait for it to end, or give another "
                           "train.experiment") from None
        self.fd = fd
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"pid {os.getpid()} on {platform.node()}".encode(), 0)
        except OSError as err:  # a full disk: the lock is held all the same, the holder's name is missing
            self.release()
            raise OutputError(f"{self.path} cannot be written ({err.strerror}); free space or give another "
                              "train.out_dir") from None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __del__(self):
        self.release()


def refuse_replacing_another_run(folder: str, resumed_from, iteration: int):
    """RunError where a run would replace another run's checkpoints in ``folder``: a new run (not resumed, at
    iteration 0) in a folder that holds some, or a resume of a checkpoint from elsewhere (``resumed_from``, a real
    path: ``--resume CKPT train.experiment=OTHER``) into one."""
    earlier = [n for n in ("last.pth", "best.pth") if os.path.isfile(os.path.join(folder, n))]
    if not earlier:
        return
    if not resumed_from and iteration == 0:
        raise RunError(f"{folder} holds another run's {' and '.join(earlier)}: a new run would replace them; continue "
                       "it with --resume, give another train.experiment, or set train.overwrite=true to start over")
    if resumed_from and os.path.dirname(resumed_from) != os.path.realpath(folder):
        raise RunError(f"{folder} holds another run's {' and '.join(earlier)}: resuming {resumed_from} there would "
                       "replace them; give a train.experiment whose folder holds no run (or the checkpoint's own), or "
                       "set train.overwrite=true to replace them")
