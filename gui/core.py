"""The GUI's one door into the core: every chipctl name the window uses is imported here.

chipctl is being restructured (the engine, the run store and the analysis move); keeping the
imports and the few engine calls in this module keeps that merge to one file. `Manual` is the
seam for manual device work: today it checks the limits the GUI can check (chip pressure,
syringe contents) and writes every action to the event log; the restructured engine records
manual work in its own append-only manual-session record and passes it through the run's
interlocks, and `Manual.run` is where that call goes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipctl.bench import Bench, load_bench
from chipctl.devices import Camera, Frame, Illuminator, Pump, Stage
from chipctl.events import RunEvents, RunState
from chipctl.protocol.model import Protocol
from chipctl.protocol.script import load_any
from chipctl.protocol.validate import DryRun, check_protocol
from chipctl.runs import RunFolder, RunIndex, RunNotFound, describe_interruption, read_frame
from chipctl.runs.analysis import Geometry, ZoneChannel, zone_table
from chipctl.runs.folder import read_events
from chipctl.session import BenchUnavailable, Engine, make_counter
from chipctl.simlaunch import SimulatedBench, simulated_bench_file
from chipctl.sourcefile import Problem, SourceError

__all__ = [
    "Bench", "BenchUnavailable", "Camera", "DryRun", "Engine", "Frame", "Geometry",
    "Illuminator", "Manual", "ManualRefused", "Problem", "Protocol", "Pump", "RunEvents",
    "RunFolder", "RunIndex", "RunNotFound", "RunState", "SimulatedBench", "SourceError",
    "Stage", "ZoneChannel", "autofocus_z", "check_protocol", "default_counter",
    "describe_interruption", "devices_of", "kept_on_disk", "load_any", "load_bench",
    "make_counter", "protocol_library", "read_events", "read_frame", "simulated_bench_file",
    "write_run_report", "zone_table",
]

LIBRARY_ENV = "CHIPCTL_PROTOCOLS"


def default_counter() -> Callable[[Any], Any]:
    """chipctl's vesicle counter with default parameters."""
    from chipctl.vision import count_frame

    return count_frame


def write_run_report(folder: Path) -> Path:
    """Write a run's HTML report; returns its path."""
    from chipctl.runs.report import write_report

    return Path(write_report(RunFolder.open(folder)))


def kept_on_disk(engine: Any) -> Callable[[int], bool]:
    """Which of a run's frames (by 0-based number) the engine writes to the run folder."""
    from chipctl.runs import KeepPolicy

    try:
        policy = KeepPolicy.parse(getattr(engine, "keep_frames", "none"))
    except ValueError:
        policy = KeepPolicy(0)
    return policy.keeps


def autofocus_z(devices: Any) -> float:
    """Autofocus with the bench's camera and stage on whatever light is on; the focus found."""
    from chipctl.autofocus import autofocus

    return float(autofocus(devices.first("camera"), devices.first("stage")).z_um)


def devices_of(engine: Any) -> Any:
    """The engine's devices by kind (`.pumps`, `.illuminators`, `.stages`, `.cameras`,
    `.first(kind)`); the restructured engine's manual-access methods replace this."""
    return engine.rig


def protocol_library() -> Path | None:
    """The protocol library folder: $CHIPCTL_PROTOCOLS, the repository's protocols/ beside the
    installed packages (an editable or source install), or share/chipctl/protocols under the
    environment's prefix (where a packaged install puts data files)."""
    here = Path(__file__).resolve().parent.parent
    candidates = [Path(os.environ[LIBRARY_ENV])] if os.environ.get(LIBRARY_ENV) else []
    candidates += [here / "protocols", Path(sys.prefix) / "share" / "chipctl" / "protocols"]
    return next((path for path in candidates if path.is_dir()), None)


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
