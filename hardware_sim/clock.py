"""The simulator's virtual clock: simulated seconds run `speed` times faster than the wall."""

from __future__ import annotations

import threading
import time


class VirtualClock:
    """Monotonic simulated time. `speed` = simulated seconds per wall second (changeable)."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._wall0 = time.monotonic()
        self._sim0 = 0.0

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            now = time.monotonic()
            self._sim0 += (now - self._wall0) * self._speed
            self._wall0 = now
            self._speed = float(value)

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        with self._lock:
            return self._sim0 + (time.monotonic() - self._wall0) * self._speed

    def wall_delay(self, sim_seconds: float) -> float:
        """Wall-clock seconds that `sim_seconds` of simulated time take."""
        return max(0.0, sim_seconds) / self._speed
