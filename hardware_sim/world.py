"""The simulated bench's shared state: one clock, one lock, the reagents, the chip and devices.

Device emulators register their state models here; the chip reads the pumps' flows from here
and the camera reads the stage, focus and illuminator from here. Everything that touches this
state holds `world.lock` (the endpoints take it around every emulator call).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hardware_sim.clock import VirtualClock

MARKERS = ("CD9", "CD63", "CD81")


@dataclass(frozen=True)
class Reagent:
    """What a syringe holds. A sample carries vesicles with a marker profile and a log-normal
    size distribution (hardware_sim.sample reads one from a sample file)."""

    name: str
    vesicles_per_ml: float = 0.0
    # Fraction of vesicles positive for each tetraspanin (captured by / labelled for it).
    markers: dict[str, float] = field(default_factory=dict)
    # A detection antibody labels captured vesicles in these fluorescence channels.
    labels: tuple[str, ...] = ()
    size_median_nm: float = 100.0  # log-normal diameter: median and geometric SD
    size_gsd: float = 1.0
    co_expression: float = 0.0  # 0 independent markers .. 1 maximally nested
    labelling_efficiency: float = 1.0  # fraction of marker-positive vesicles that take the dye
    free_protein_ug_ml: float = 0.0
    description: str = ""  # the sample's name as its file gives it


class FlowSource(Protocol):
    """A pump model as the chip sees it."""

    reagent: str

    def flow_ul_per_min(self, now: float) -> float:
        """Signed flow into the chip at simulated time `now` (infuse > 0, withdraw < 0)."""
        ...


@dataclass
class World:
    """Shared simulated state. `devices` maps the bench's device names to their models."""

    clock: VirtualClock
    seed: int = 0
    reagents: dict[str, Reagent] = field(default_factory=dict)
    pumps: dict[str, FlowSource] = field(default_factory=dict)
    devices: dict[str, Any] = field(default_factory=dict)
    chip: Any = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def now(self) -> float:
        """Simulated seconds."""
        return self.clock.now()

    def inflows(self, at: float | None = None) -> list[tuple[Reagent, float]]:
        """Each pump's reagent and its flow into the chip (uL/min, infusing only) at simulated
        time `at` (default now)."""
        now = self.now() if at is None else at
        flows = []
        for pump in self.pumps.values():
            rate = pump.flow_ul_per_min(now)
            if rate > 0:
                flows.append((self.reagents.get(pump.reagent, Reagent(pump.reagent)), rate))
        return flows

    def illuminate(self, lights: list[tuple[float, float]], seconds: float) -> None:
        """Light of (wavelength nm, power fraction) on the sample for `seconds` of simulated
        time: every device that takes a light dose (the camera's field) gets it."""
        for device in list(self.devices.values()):
            dose = getattr(device, "take_light", None)
            if callable(dose):
                dose(lights, seconds)

    def advance(self, until: float | None = None, max_cells: int | None = None) -> bool:
        """Bring time-driven models (the chip's capture) up to the clock, or to `until` (a
        simulated time already passed), at most `max_cells` grid cells of it; True once there.
        The chip takes its own lock, not the bench's."""
        if self.chip is None:
            return True
        return bool(self.chip.advance(self, until, max_cells))
