"""The GUI's one door into the core: every chipctl name the window uses is imported here.

chipctl is being restructured (the engine, the run store and the analysis move); keeping the
imports and the few engine calls in this module keeps that merge to one file. `Manual` is the
seam for manual device work: today it checks the limits the GUI can check (chip pressure,
syringe contents) and writes every action to the event log; the restructured engine records
manual work in its own append-only manual-session record and passes it through the run's
interlocks, and `Manual.run` is where that call goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipctl.analysis.counts import Geometry, ZoneChannel, zone_table
from chipctl.config.bench import Bench, load_bench
from chipctl.config.sourcefile import Problem, SourceError
from chipctl.devices.interfaces import Camera, Frame, Illuminator, Stage
from chipctl.devices.interfaces import SyringePump as Pump
from chipctl.engine import BenchUnavailable, Engine
from chipctl.protocol.library import protocol_library
from chipctl.protocol.model import Protocol
from chipctl.protocol.script import load_any
from chipctl.protocol.validate import DryRun, check_protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, RunState
from chipctl.run.signals import stopping_on_signals
from chipctl.runs import (
    KeepPolicy,
    RunFolder,
    RunIndex,
    RunNotFound,
    describe_interruption,
    read_frame,
)
from chipctl.runs.detections import SPOTS_NAME, read_detections
from chipctl.runs.folder import read_events
from chipctl.simlaunch import SimulatedBench, simulated_bench_file
from chipctl.vision.factory import make_counter
from chipctl.vision.model import CountParams, CountResult

__all__ = [
    "SPOTS_NAME", "Bench", "BenchUnavailable", "Camera", "CountParams", "CountResult",
    "CountedFrame", "Devices", "DryRun", "Engine", "Frame", "Geometry", "Illuminator", "Manual",
    "ManualRefused", "Problem", "Protocol", "Pump", "RunEvents", "RunFolder", "RunIndex",
    "RunNotFound", "RunState", "SimulatedBench", "SourceError", "Stage", "ZoneChannel",
    "check_protocol", "default_counter", "describe_interruption", "devices_of", "kept_on_disk",
    "load_any", "load_bench", "make_counter", "protocol_library", "read_detections",
    "read_events", "read_frame", "simulated_bench_file", "stopping_on_signals", "write_run_report",
    "zone_table",
]

def default_counter() -> Callable[[Any], Any]:
    """chipctl's vesicle counter with default parameters (for frames no run counted)."""
    return make_counter(CountParams())


def write_run_report(folder: Path) -> Path:
    """Write a run's HTML report; returns its path."""
    from chipctl.analysis.report import write_report

    return Path(write_report(RunFolder.open(folder)))


def kept_on_disk(engine: Any) -> Callable[[int], bool]:
    """Which of a run's frames (by 0-based number) the engine writes to the run folder."""
    try:
        policy = KeepPolicy.parse(getattr(engine, "keep_frames", "none"))
    except ValueError:
        policy = KeepPolicy(0)
    return policy.keeps


class Devices:
    """The engine's devices for manual control, by kind (the engine's own accessors)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def pumps(self) -> dict[str, Pump]:
        """Syringe pumps by name."""
        return self.engine.pumps()

    @property
    def illuminators(self) -> dict[str, Illuminator]:
        """Illuminators by name."""
        return self.engine.illuminators()

    @property
    def stages(self) -> dict[str, Stage]:
        """Stages by name."""
        return self.engine.stages()

    @property
    def cameras(self) -> dict[str, Camera]:
        """Cameras by name."""
        return self.engine.cameras()

    def autofocus(self) -> float:
        """Focus with the camera on whatever light is on; the focal plane (um)."""
        return float(self.engine.autofocus())


def devices_of(engine: Engine) -> Devices:
    """The engine's devices by kind."""
    return Devices(engine)


class ManualRefused(ValueError):
    """A manual action the bench's limits do not allow (the message says which limit)."""


@dataclass(frozen=True)
class ManualAction:
    """One manual action as recorded: the device, what was done, and its settings."""

    device: str
    action: str
    fields: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """As an event record (the run store's event format)."""
        return {"event": "manual", "device": self.device, "action": self.action, **self.fields}


class Manual:
    """Manual device work: checked against the bench's limits, recorded, then done.

    `log` receives every action's record on the thread that calls `run` (the window posts it
    to the event log); the refusal of an action is raised as ManualRefused before any I/O.
    """

    def __init__(self, bench: Bench, log: Callable[[dict[str, Any]], None]) -> None:
        self.bench = bench
        self.log = log

    def check_pump(self, pump: Pump, direction: str, rate_ul_min: float,
                   volume_ul: float | None) -> None:
        """The chip's pressure limit and the syringe's contents (infuse) or room (withdraw)."""
        chip = self.bench.chip
        limit = chip.max_flow_ul_min()
        if rate_ul_min <= 0:
            raise ManualRefused("the flow rate must be above 0 uL/min")
        if rate_ul_min > limit:
            raise ManualRefused(f"{rate_ul_min:g} uL/min exceeds the chip's pressure limit "
                                f"({chip.pressure_limit_kpa:g} kPa allows {limit:.0f} uL/min)")
        syringe = pump.syringe
        room = syringe.contents_ul if direction == "infuse" else (
            syringe.volume_ul - syringe.contents_ul)
        if volume_ul is not None and volume_ul > room + 1e-9:
            held = "holds" if direction == "infuse" else "has room for"
            raise ManualRefused(f"{volume_ul:g} uL is more than the syringe {held} "
                                f"({room:.1f} uL)")

    def run(self, device: str, action: str, call: Callable[[], Any], **fields: Any) -> Any:
        """Record the action, then do it (on the caller's thread: a DeviceCalls worker)."""
        self.log(ManualAction(device, action, fields).record())
        return call()
