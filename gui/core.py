"""The GUI's one door into the core: every chipctl name the window uses is imported here.

chipctl is being restructured (the engine, the run store and the analysis move); keeping the
imports and the few engine calls in this module keeps that merge to one file. Manual device
work has one home, the engine's: `Engine.manual` (chipctl.manual.ManualSession) checks every
action by the run's interlocks and records it in the manual-session record; the panels call
it and never a device directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipctl.analysis.counts import Geometry, ZoneChannel, zone_table
from chipctl.analysis.numbers import number
from chipctl.config.bench import Bench, load_bench
from chipctl.config.sourcefile import Problem, SourceError
from chipctl.devices.illuminator import ExposureLight
from chipctl.devices.interfaces import Camera, Frame, Illuminator, Stage
from chipctl.devices.interfaces import SyringePump as Pump
from chipctl.engine import BenchUnavailable, Engine
from chipctl.manual import ManualRefused, ManualSession
from chipctl.protocol.library import protocol_library
from chipctl.protocol.model import Protocol
from chipctl.protocol.script import load_any
from chipctl.protocol.validate import DryRun, check_protocol
from chipctl.run.counting import CountedFrame
from chipctl.run.events import RunEvents, RunState
from chipctl.run.memory import frames_back_to_the_system
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
    "CountedFrame", "Devices", "DryRun", "Engine", "ExposureLight", "Frame", "Geometry",
    "Illuminator",
    "ManualRefused", "ManualSession", "Problem", "Protocol", "Pump", "RunEvents", "RunFolder",
    "RunIndex", "RunNotFound", "RunState", "SimulatedBench", "SourceError", "Stage", "ZoneChannel",
    "check_protocol", "default_counter", "describe_interruption", "devices_of", "kept_on_disk",
    "frames_back_to_the_system", "load_any", "load_bench", "make_counter", "number",
    "protocol_library",
    "read_detections", "read_events", "read_frame", "simulated_bench_file", "stopping_on_signals",
    "write_run_report", "zone_table",
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
    """The engine's devices by kind, to read their state (actions go through `manual`)."""

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

    @property
    def manual(self) -> ManualSession:
        """The engine's manual session: every manual action, checked and recorded."""
        return self.engine.manual


def devices_of(engine: Engine) -> Devices:
    """The engine's devices by kind."""
    return Devices(engine)
