"""A run folder's liveness lock: held by the process recording the run, freed by the OS when it
dies (even by SIGKILL), so a folder still marked "running" whose lock is free was cut off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

LOCK_NAME = ".recording.lock"

if sys.platform == "win32":  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:  # POSIX
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


class RecordingLock:
    """Held for as long as a run is being recorded."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock (the folder is new, so nobody else holds it)."""
        self._handle = self.path.open("a+b")
        if not _try_lock(self._handle):
            raise RuntimeError(f"{self.path.parent} is being recorded by another process")
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()).encode())
        self._handle.flush()

    def release(self) -> None:
        """Let go (closing frees the lock)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def is_being_recorded(folder: Path) -> bool:
    """True if a live process holds the folder's lock."""
    path = folder / LOCK_NAME
    if not path.exists():
        return False
    with path.open("a+b") as handle:
        return not _try_lock(handle)
