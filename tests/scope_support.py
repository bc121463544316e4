"""Test helpers for the microscope: a hand-driven clock, fake flows, emulators served on a wire.

(Exact-byte tests use tests/wire.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hardware_sim.endpoints import PtyEndpoint, TcpEndpoint


class ManualClock:
    """A clock the test moves by hand (World only calls now())."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.speed = 1.0

    def now(self) -> float:
        return self.t

    def wall_delay(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds)


@dataclass
class ConstantFlow:
    """A FlowSource pumping `reagent` at `rate` uL/min from `start` to `stop` (sim s)."""

    reagent: str
    rate: float
    start: float = 0.0
    stop: float = float("inf")

    def flow_ul_per_min(self, now: float) -> float:
        return self.rate if self.start <= now < self.stop else 0.0


@contextmanager
def serving(emulator: object, lock: object, kind: str = "tcp") -> Iterator[Any]:
    """Serve an emulator on TCP or a pty for the duration; yields the endpoint."""
    endpoint = (TcpEndpoint if kind == "tcp" else PtyEndpoint)("dev", emulator, lock)  # type: ignore[arg-type]
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@contextmanager
def served(emulator: object, lock: object, kind: str = "tcp") -> Iterator[str]:
    """Serve an emulator on TCP or a pty for the duration; yields the URL to open."""
    with serving(emulator, lock, kind) as endpoint:
        yield endpoint.url
