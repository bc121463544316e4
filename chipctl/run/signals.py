"""Signals that end a controller: SIGTERM and SIGHUP (a service manager, a closed terminal)
stop the bench at once, as SIGINT (Ctrl-C) does.

`stopping_on_signals(stop)` installs handlers that call `stop(signal_name)` in the main
thread (Python runs signal handlers there) and restores the previous ones afterwards. Outside
the main thread nothing is installed (Python allows handlers only there). SIGKILL cannot be
caught: the pumps' own safe mode (a heartbeat the pump watches) covers it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class StopSignal(BaseException):
    """A stop signal (its name) raised in the main thread by a handler that has nothing to
    stop yet (a bench still connecting), as Ctrl-C raises KeyboardInterrupt: a BaseException,
    so no `except Exception` on the way swallows it."""


@contextmanager
def stopping_on_signals(stop: Callable[[str], object]) -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP call `stop(name)` (e.g. "SIGTERM")."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop(signal.Signals(signum).name)

    previous: dict[int, Any] = {}
    for sig in STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
