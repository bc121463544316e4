"""The manual session's state and record: refusals, recorded actions, device look-up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipctl.devices.illuminator import LiveExposures
from chipctl.devices.rig import Rig
from chipctl.run.clock import RunClock
from chipctl.run.events import RunEvents, record
from chipctl.run.fluidics import PumpRun
from chipctl.runs.manual import ManualRecord
from drivers.errors import DeviceError

POLL_WALL_S = 0.2  # how often a running manual flow is polled (wall seconds)
EMPTY_UL = 0.05  # a syringe holding (or with room for) less than this is at its end of travel


class ManualRefused(ValueError):
    """A manual action the bench's limits (or a run in progress) do not allow; nothing was
    sent. The message says which limit."""


class ManualBase:
    """A manual session's state and record: what every kind of manual action shares."""

    def __init__(self, rig: Rig, clock: RunClock, runs_dir: Path, *,
                 busy: Callable[[], str | None] = lambda: None, operator: str = "",
                 poll_wall_s: float = POLL_WALL_S) -> None:
        self.rig, self.clock, self.runs_dir = rig, clock, Path(runs_dir)
        self.busy = busy  # why the bench is not free for manual work (a run has it), or None
        self.operator = operator
        self.poll_wall_s = poll_wall_s
        self.events = RunEvents()
        self.record: ManualRecord | None = None
        self._flows: dict[str, PumpRun] = {}
        self._flow_started: dict[str, float] = {}
        self._lock = threading.RLock()
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._live: dict[str, LiveExposures] = {}  # by camera, while live

    # -- the record -------------------------------------------------------------------------
    @property
    def folder(self) -> Path | None:
        """The open session's folder (None before the first action)."""
        return self.record.folder if self.record is not None else None

    def _recorder(self) -> ManualRecord:
        with self._lock:
            if self.record is None:
                self.record = ManualRecord(self.runs_dir, self.rig.bench, self.rig.devices,
                                           self.operator)
                self.events.record.connect(self.record.on_record)
            return self.record

    def _emit(self, kind: str, **fields: Any) -> None:
        self._recorder()
        self.events.record.emit(record(kind, t_s=round(self.clock.now(), 3), **fields))

    def note(self, kind: str, **fields: Any) -> None:
        """Add an event to the open session (nothing if none is open)."""
        if self.record is not None:
            self._emit(kind, **fields)

    def _refuse(self, action: dict[str, Any], reason: str) -> ManualRefused:
        self._emit("manual_refused", **action, reason=reason)
        return ManualRefused(reason)

    def _check_free(self, action: dict[str, Any]) -> None:
        why = self.busy()
        if why:
            raise self._refuse(action, why)

    def _do(self, action: dict[str, Any], call: Callable[[], Any]) -> Any:
        """Record the action, then do it; a device error is recorded, then raised."""
        self._emit("manual", **action)
        try:
            return call()
        except DeviceError as exc:
            self._emit("manual_failed", device=action["device"], action=action["action"],
                       error=str(exc))
            raise

    def _device(self, kind: str, name: str, action: dict[str, Any]) -> Any:
        device = self.rig.of_kind(kind).get(name)
        if device is None:
            known = ", ".join(self.rig.of_kind(kind)) or "none"
            raise self._refuse(action, f"no {kind} {name!r} on this bench ({kind}s: {known})")
        return device
