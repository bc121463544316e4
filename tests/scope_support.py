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


def pumped_world(seed: int) -> Any:
    """A world on a manual clock with the default reagents and chip and the bench's three
    syringe pumps (buffer, sample, stain), none running."""
    from hardware_sim.bench import DEFAULT_REAGENTS
    from hardware_sim.chip import default_chip
    from hardware_sim.syringe import SyringePumpModel
    from hardware_sim.world import World

    clock = ManualClock()
    world = World(clock=clock, seed=seed, reagents=dict(DEFAULT_REAGENTS))  # type: ignore[arg-type]
    world.chip = default_chip(seed=seed)
    for pump, reagent in (("buffer_pump", "buffer"), ("sample_pump", "sample"),
                          ("stain_pump", "stain")):
        world.pumps[pump] = SyringePumpModel(pump, reagent, 4.699, 1000.0, 1000.0, clock.now)
    return world
