"""What the bench is doing now, read from the devices: pumps, lights, stage, camera exposure.

`BenchPoller` reads every light, stage and camera once a second on a thread of its own (one read
in flight at most) and hands a `BenchSnapshot` to the Qt thread. Pumps are read the same way
between runs; during a run they are followed from the run's own pump events, because a pump's
alarm is reported once, to whoever asks, and it must reach the run's interlock, not the window.
Every indicator in the window shows the newest snapshot, so none can say "off" while a pump
runs or a light is on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from gui.bridge import Mailbox, describe_error

POLL_MS = 1000


@dataclass(frozen=True)
class PumpState:
    """A pump as last seen: running or not, and what it was told (when known)."""

    running: bool
    dispensed_ul: float | None = None
    direction: str = ""
    rate_ul_min: float | None = None
    source: str = "polled"  # polled from the pump, or followed from the run's events


@dataclass(frozen=True)
class BenchSnapshot:
    """The devices' state at one moment; `errors` are the devices that did not answer."""

    pumps: dict[str, PumpState] = field(default_factory=dict)
    lights: dict[str, dict[str, tuple[bool, float]]] = field(default_factory=dict)
    stages: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    exposure_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    armed: dict[str, dict[str, float]] = field(default_factory=dict)  # lit by the camera

    def pumps_running(self) -> list[str]:
        """Names of the pumps that run."""
        return [name for name, pump in self.pumps.items() if pump.running]

    def lights_on(self) -> list[tuple[str, str, float]]:
        """(illuminator, channel, power %) of every lit channel."""
        return [(name, channel, power) for name, state in self.lights.items()
                for channel, (on, power) in state.items() if on]

    def lights_armed(self) -> list[tuple[str, str, float]]:
        """(illuminator, channel, power %) of every channel armed for the camera's trigger:
        dark between exposures, lit while the camera exposes."""
        return [(name, channel, power) for name, state in self.armed.items()
                for channel, power in state.items()]

    def all_off(self) -> bool:
        """True only if every pump and light was read and is off (not even armed)."""
        known = not any(name in self.errors for name in (*self.pumps, *self.lights))
        return known and not self.pumps_running() and not self.lights_on() \
            and not self.lights_armed()

    def activity(self) -> tuple[Any, ...]:
        """What an operator would call the bench's state (positions left out: a stage that
        is read again at the same place is no change)."""
        return (self.all_off(), tuple(sorted(self.pumps_running())),
                tuple(sorted(self.lights_on())), tuple(sorted(self.lights_armed())),
                tuple(sorted(self.errors)))


def read_bench(devices: Any, read_pumps: bool,
               previous: BenchSnapshot | None = None) -> BenchSnapshot:
    """Read every device (device I/O: call off the Qt thread)."""
    errors: dict[str, str] = {}
    pumps = dict(previous.pumps) if previous is not None else {}
    if read_pumps:
        for name, pump in devices.pumps.items():
            try:
                pumps[name] = PumpState(bool(pump.is_running()), float(pump.displaced_ul()))
            except Exception as exc:  # noqa: BLE001 - a device that does not answer is shown
                errors[name] = describe_error(exc)
    lights: dict[str, dict[str, tuple[bool, float]]] = {}
    armed: dict[str, dict[str, float]] = {}
    for name, light in devices.illuminators.items():
        try:
            lights[name] = {ch: (bool(on), float(p)) for ch, (on, p) in light.state().items()}
            armed_now = getattr(light, "armed", None)  # a camera-triggered LED's armed channels
            if callable(armed_now) and (channels := armed_now()):
                armed[name] = {str(ch): float(p) for ch, p in channels.items()}
        except Exception as exc:  # noqa: BLE001
            errors[name] = describe_error(exc)
    stages: dict[str, tuple[float, float, float]] = {}
    for name, stage in devices.stages.items():
        try:
            x, y = stage.position()
            stages[name] = (float(x), float(y), float(stage.focus()))
        except Exception as exc:  # noqa: BLE001
            errors[name] = describe_error(exc)
    exposure = {name: float(camera.exposure_ms) for name, camera in devices.cameras.items()}
    return BenchSnapshot(pumps, lights, stages, exposure, errors, armed)


def follow_run_event(snapshot: BenchSnapshot, event: dict[str, Any]) -> BenchSnapshot | None:
    """The snapshot after a run's pump event (None if the event is not about a pump)."""
    kind, name = event.get("event"), str(event.get("pump", ""))
    if kind == "pump_start":
        state = PumpState(True, None, str(event.get("direction", "infuse")),
                          float(event.get("rate_ul_min", 0.0)), "run")
    elif kind in ("pump_hold", "pump_done"):
        state = PumpState(False, abs(float(event.get("delivered_ul", 0.0))), source="run")
    else:
        return None
    return replace(snapshot, pumps={**snapshot.pumps, name: state})


class BenchPoller(QObject):
    """Polls the bench once a second; `changed(snapshot)` on the Qt thread after every read."""

    changed = Signal(object)  # BenchSnapshot

    def __init__(self, devices: Any, run_active: Callable[[], bool],
                 interval_ms: int = POLL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.devices, self.run_active = devices, run_active
        self.snapshot = BenchSnapshot()
        self.reads = 0
        self._busy = threading.Lock()
        self._closed = False
        self.mailbox = Mailbox(parent=self)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

    def poll(self) -> None:
        """Start one read of the bench unless one is in flight."""
        if self._closed or not self._busy.acquire(blocking=False):
            return
        read_pumps = not self.run_active()
        previous = self.snapshot
        threading.Thread(target=self._read, args=(read_pumps, previous), daemon=True,
                         name="gui-bench-poll").start()

    def _read(self, read_pumps: bool, previous: BenchSnapshot) -> None:
        try:
            snapshot = read_bench(self.devices, read_pumps, previous)
        finally:
            self._busy.release()
        self.mailbox.post(self._publish, snapshot, read_pumps)

    def _publish(self, snapshot: BenchSnapshot, read_pumps: bool) -> None:
        if not read_pumps and not self.run_active():
            return  # read during a run that has ended since: its pump states are stale
        if not read_pumps or self.run_active():  # a run's pump events, heard while this
            snapshot = replace(snapshot, pumps=self.snapshot.pumps)  # read ran, are newer
        self.reads += 1
        self._set(snapshot)

    def run_event(self, event: dict[str, Any]) -> None:
        """Follow the run's pump events (Qt thread)."""
        following = follow_run_event(self.snapshot, event)
        if following is not None:
            self._set(following)

    def _set(self, snapshot: BenchSnapshot) -> None:
        self.snapshot = snapshot
        self.changed.emit(snapshot)

    def close(self) -> None:
        """Stop polling."""
        self._closed = True
        self.timer.stop()
