"""One process per run directory.

Two searches writing one directory corrupt each other's trials, so `tune` holds an exclusive
`filelock.FileLock` on `RUN/.lock` for as long as it runs. The lock is an OS file lock
(`flock`): the kernel releases it when its process dies, however it dies, so a lock left by
a killed run is simply taken over by the next one. The holder writes its PID beside the lock,
so that a refused start can say who holds the directory.
"""

import os

import filelock

LOCK_NAME = ".lock"
OWNER_NAME = ".lock.pid"


class RunDirectoryLocked(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """Exclusive lock of a run directory, as a context manager.

    Args:
        directory: the run directory (created if missing).

    Raises:
        RunDirectoryLocked: on entering, when another process holds the directory.
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self._lock = filelock.FileLock(os.path.join(self.directory, LOCK_NAME), timeout=0)

    def __enter__(self):
        os.makedirs(self.directory, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise RunDirectoryLocked(
                f"{self.directory} is in use by another bayesft-keras process "
                f"(PID {self.holder() or 'unknown'}); wait for it to end, or use another --dir."
            ) from None
        with open(self._owner_path(), "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(self._owner_path())
        except FileNotFoundError:
            pass
        self._lock.release()
        return False

    def holder(self):
        """The PID written by the process that holds the lock, or `None`."""
        try:
            with open(self._owner_path(), encoding="utf-8") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _owner_path(self):
        return os.path.join(self.directory, OWNER_NAME)
