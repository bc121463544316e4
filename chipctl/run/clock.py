"""Run time: an injectable clock that follows the bench's time scale.

On a real bench time_scale is 1. On the simulated bench it matches the simulator's speed, so a
ten-minute incubation waits 10 min / speed of wall time and the devices agree on what happened.
"""

from __future__ import annotations

import threading
import time


class RunClock:
    """Protocol time in seconds, `time_scale` protocol seconds per wall second."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._wall0 = time.monotonic()

    def now(self) -> float:
        """Protocol seconds since the clock was made."""
        return (time.monotonic() - self._wall0) * self.time_scale

    def wall(self, seconds: float) -> float:
        """Wall seconds that `seconds` of protocol time take."""
        return max(0.0, seconds) / self.time_scale

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Sleep protocol seconds; returns early (True) if `wake` is set."""
        if wake is None:
            time.sleep(self.wall(seconds))
            return False
        return wake.wait(self.wall(seconds))
