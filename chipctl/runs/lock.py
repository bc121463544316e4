"""Locks the OS frees when their holder dies (even by SIGKILL): a run folder's liveness lock
(held by the process recording the run, so a folder still marked "running" whose lock is free
was cut off) and the bench lock (one controller per bench).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
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


LOCK_DIR_ENV = "CHIPCTL_LOCK_DIR"


class BenchInUse(RuntimeError):
    """Another live controller holds a port of this bench."""


def default_lock_dir() -> Path:
    """Where bench locks live: $CHIPCTL_LOCK_DIR, else chipctl-locks in the temp directory."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "chipctl-locks")


class BenchLock:
    """One controller per bench: a lock file per device port (its URL), held while connected.

    The OS frees a lock when its holder dies (even by SIGKILL), so a lock file left by a dead
    controller is simply taken over; a live holder is named (its pid) in the refusal.
    """

    def __init__(self, ports: dict[str, str], lock_dir: Path | None = None) -> None:
        self.ports = dict(sorted(ports.items()))  # url -> the bench entry that names it
        self.lock_dir = lock_dir or default_lock_dir()
        self._handles: list[IO[bytes]] = []

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return self.lock_dir / f"port-{digest}.lock"

    def acquire(self) -> None:
        """Take every port's lock, or none: BenchInUse names the device and the holder."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        for url, device in self.ports.items():
            handle = self._path(url).open("a+b")
            if not _try_lock(handle):
                holder = _holder(handle)
                handle.close()
                self.release()
                raise BenchInUse(f"device {device!r} is in use by another chipctl "
                                 f"({holder}); stop that controller first")
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}".encode())
            handle.flush()
            self._handles.append(handle)

    def release(self) -> None:
        """Let go of every port (closing frees the lock)."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


def _holder(handle: IO[bytes]) -> str:
    handle.seek(0)
    text = handle.read(64).decode("ascii", "replace").strip()
    return text if text.startswith("pid ") and text[4:].isdigit() else "pid unknown"
