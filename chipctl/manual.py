"""Manual work on the bench, recorded and guarded like a run.

Every manual action (a pump infusing or withdrawing, a light, a stage or focus move, the
camera's exposure, a snap, live view, autofocus, a valve port) goes through `ManualSession`,
which the engine owns (`Engine.manual`). Each action is checked first, by the same interlocks
a protocol step meets: the chip's pressure limit for the total flow of every pump running
(chipctl.run.interlocks.check_pressure), what the syringe holds or has room for, a syringe at
the end of its travel, the stage's travel limits, the illuminator's channels, the camera's
exposure range; and no manual action while a run has the bench. A refused action raises
ManualRefused (a ValueError whose message says which limit) before anything is sent.

What is done, refused, failed, stopped by an interlock or by an emergency stop is recorded in
a manual session (chipctl.runs.manual: a folder of the runs directory, events.jsonl in a
run's event format, `chipctl runs list` shows it) opened by the first action and closed with
the engine. A manual flow is a run's PumpRun: its pump records keep the syringe account, and
a watcher thread polls it until it ends, so a stall alarm, the end of travel or a lost pump is
recorded as the interlock it is and the pump is stopped blindly, as the safe state does.
Stopping (a pump, the light, the stage) is never refused. Thread-safe: actions may come from
any thread (the GUI's device pool) and run on it; records go out on `events.record` too.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipctl.devices.autofocus import autofocus
from chipctl.devices.illuminator import ExposureLight, LiveExposures, LiveStopped, lit_snap
from chipctl.devices.interfaces import Frame
from chipctl.devices.rig import Rig
from chipctl.devices.safestop import off_of
from chipctl.devices.stage import outside_travel
from chipctl.run import interlocks
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


class ManualSession:
    """Manual device work on one rig: checked, done, and recorded in a manual session."""

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

    # -- pumps ------------------------------------------------------------------------------
    def infuse(self, pump: str, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Infuse `volume_ul` (None: all the syringe holds) at `rate_ul_min`; returns once the
        pump runs (it stops by itself; stop_pump stops it early)."""
        self._flow(pump, "infuse", rate_ul_min, volume_ul)

    def withdraw(self, pump: str, rate_ul_min: float, volume_ul: float | None = None) -> None:
        """Withdraw `volume_ul` (None: all the syringe has room for) at `rate_ul_min`."""
        self._flow(pump, "withdraw", rate_ul_min, volume_ul)

    def check_flow(self, pump: str, direction: str, rate_ul_min: float,
                   volume_ul: float | None) -> float:
        """What infuse/withdraw would check, without recording: ManualRefused if the flow is
        not allowed, else the volume it would pump (uL)."""
        device = self.rig.pumps.get(pump)
        if device is None:
            raise ManualRefused(f"no pump {pump!r} on this bench")
        with self._lock:
            return self._flow_volume(pump, device, direction, rate_ul_min, volume_ul)

    def _flow_volume(self, name: str, device: Any, direction: str, rate: float,
                     volume: float | None) -> float:
        if not (math.isfinite(rate) and rate > 0):
            raise ManualRefused(f"the flow rate must be above 0 uL/min, got {rate:g}")
        if name in self._flows:
            raise ManualRefused(f"{name} is already pumping; stop it first")
        syringe = device.syringe
        room = syringe.contents_ul if direction == "infuse" else (
            syringe.volume_ul - syringe.contents_ul)
        if room < EMPTY_UL:
            state = "empty" if direction == "infuse" else "full"
            raise ManualRefused(f"end of travel: the syringe on {name} is {state}")
        if volume is not None and not (math.isfinite(volume) and volume > 0):
            raise ManualRefused(f"the volume must be above 0 uL, got {volume:g}")
        if volume is not None and volume > room + 1e-6:
            held = "holds" if direction == "infuse" else "has room for"
            raise ManualRefused(f"{volume:g} uL is more than the syringe on {name} {held} "
                                f"({room:.1f} uL)")
        others = {n: run.rate_ul_min for n, run in self._flows.items()}
        try:
            interlocks.check_pressure(self.rig.bench.chip, " + ".join([*others, name]),
                                      rate + sum(others.values()))
        except interlocks.Interlock as exc:
            raise ManualRefused(str(exc)) from None
        return room if volume is None else volume

    def _flow(self, name: str, direction: str, rate: float, volume: float | None) -> None:
        action = {"device": name, "action": direction, "rate_ul_min": rate, "volume_ul": volume}
        with self._lock:
            self._check_free(action)
            device = self._device("pump", name, action)
            try:
                target = self._flow_volume(name, device, direction, rate, volume)
            except ManualRefused as exc:
                raise self._refuse(action, str(exc)) from None
            flow = PumpRun(name, device, rate, target, direction, emit=self._emit,
                           chip=self.rig.bench.chip)
            self._do(action, flow.start)
            self._flows[name], self._flow_started[name] = flow, self.clock.now()
            self._watch()

    def stop_pump(self, pump: str) -> None:
        """Stop a pump now (never refused); a manual flow on it is booked as it stands."""
        action = {"device": pump, "action": "stop"}
        device = self._device("pump", pump, action)
        with self._lock:
            flow = self._flows.get(pump)
            self._do(action, flow.stop if flow is not None else device.stop)
            if flow is not None:
                self._flows.pop(pump, None)
                flow.finish(expect_full=False)

    def flowing(self) -> dict[str, float]:
        """The pumps running a manual flow, with their rates (uL/min)."""
        with self._lock:
            return {name: flow.rate_ul_min for name, flow in self._flows.items()}

    # -- watching the flows -----------------------------------------------------------------
    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._stop_watching.clear()
            self._watcher = threading.Thread(target=self._watch_loop, daemon=True,
                                             name="chipctl-manual-flows")
            self._watcher.start()

    def _watch_loop(self) -> None:
        while not self._stop_watching.wait(self.poll_wall_s):
            with self._lock:
                for name in list(self._flows):
                    self.poll(name)
                if not self._flows:
                    self._watcher = None
                    return

    def poll(self, pump: str) -> None:
        """Look at one manual flow: booked when it ends, stopped and recorded as an interlock
        when an alarm, the end of travel, a lost pump or a stall ends it (the watcher calls
        this every `poll_wall_s`)."""
        with self._lock:
            flow = self._flows.get(pump)
            if flow is None:
                return
            try:
                if flow.is_running():
                    interlocks.check_in_time(pump, flow.target_ul, flow.rate_ul_min,
                                             self.clock.now() - self._flow_started[pump])
                    return
                self._flows.pop(pump)
                flow.finish()
            except (interlocks.Interlock, DeviceError) as exc:
                self._interlock(pump, flow, exc)

    def _interlock(self, pump: str, flow: PumpRun, exc: Exception) -> None:
        """Stop the pump as the safe state does (its blind off), book what it moved, and
        record the interlock with whether the pump confirmed the stop."""
        confirmed = True
        if self._flows.pop(pump, None) is not None:  # not finished yet: stop it and book it
            confirmed = False
            with contextlib.suppress(DeviceError):
                confirmed = off_of(flow.pump, "pump")()
            with contextlib.suppress(DeviceError):
                flow.stop()
            with contextlib.suppress(DeviceError, interlocks.Interlock):
                flow.finish(expect_full=False)
        self._emit("interlock", device=pump, reason=interlocks.reason_for(exc),
                   stop_confirmed=confirmed)

    # -- light ------------------------------------------------------------------------------
    def light(self, illuminator: str, channel: str, power_pct: float) -> None:
        """Turn `channel` on at `power_pct` %, every other channel of it off."""
        action = {"device": illuminator, "action": "light", "channel": channel,
                  "power_pct": power_pct}
        self._check_free(action)
        device = self._lamp(ExposureLight(illuminator, channel, power_pct), action)
        self._do(action, lambda: device.light(channel, power_pct))

    def _lamp(self, light: ExposureLight, action: dict[str, Any]) -> Any:
        """The illuminator of `light`, its channel and power checked."""
        device = self._device("illuminator", light.illuminator, action)
        if light.channel not in device.channels:
            raise self._refuse(action, f"{light.illuminator} has no channel {light.channel!r} "
                                       f"(it has {', '.join(device.channels)})")
        if not (math.isfinite(light.power_pct) and 0 <= light.power_pct <= 100):
            raise self._refuse(action, f"LED power must be 0-100 %, got {light.power_pct:g}")
        return device

    def dark(self, illuminator: str | None = None) -> None:
        """Every channel off, of one illuminator or of all (never refused)."""
        names = [illuminator] if illuminator else list(self.rig.illuminators)
        for name in names:
            action = {"device": name, "action": "dark"}
            self._do(action, self._device("illuminator", name, action).dark)

    # -- stage ------------------------------------------------------------------------------
    def _travel(self, stage: str) -> Any:
        return getattr(self.rig.bench.devices.get(stage), "travel", None)

    def move_to(self, stage: str, x_um: float, y_um: float) -> tuple[float, float]:
        """Move the stage to (x, y) um and wait until it is there; returns where it is. A
        stage stopped short (a limit switch) is recorded as an interlock (StageFault)."""
        action = {"device": stage, "action": "move to", "x_um": x_um, "y_um": y_um}
        self._check_free(action)
        device = self._device("stage", stage, action)
        why = outside_travel(self._travel(stage), x_um=x_um, y_um=y_um)
        if why:
            raise self._refuse(action, why)
        self._do(action, lambda: device.move_to(x_um, y_um))
        self._settle(stage, device)
        return device.position()  # type: ignore[no-any-return]

    def move_by(self, stage: str, dx_um: float, dy_um: float) -> tuple[float, float]:
        """Jog: move by (dx, dy) um from where the stage is."""
        x, y = self._device("stage", stage, {"device": stage, "action": "jog"}).position()
        return self.move_to(stage, x + dx_um, y + dy_um)

    def focus_to(self, stage: str, z_um: float) -> float:
        """Move the focus to `z_um` and wait; returns where it is."""
        action = {"device": stage, "action": "focus to", "z_um": z_um}
        self._check_free(action)
        device = self._device("stage", stage, action)
        why = outside_travel(self._travel(stage), z_um=z_um)
        if why:
            raise self._refuse(action, why)
        self._do(action, lambda: device.focus_to(z_um))
        self._settle(stage, device)
        return float(device.focus())

    def _settle(self, stage: str, device: Any) -> None:
        try:
            device.wait_idle()
        except DeviceError as exc:
            self._emit("interlock", device=stage, reason=interlocks.reason_for(exc))
            raise

    def halt_stage(self, stage: str) -> None:
        """Stop every axis of the stage now (never refused)."""
        action = {"device": stage, "action": "halt"}
        self._do(action, self._device("stage", stage, action).halt)

    # -- camera -----------------------------------------------------------------------------
    def set_exposure(self, camera: str, exposure_ms: float) -> None:
        """Set the camera's exposure (within the bench file's exposure range, if it has one)."""
        action = {"device": camera, "action": "exposure", "exposure_ms": exposure_ms}
        self._check_free(action)
        device = self._device("camera", camera, action)
        limits = getattr(self.rig.bench.devices.get(camera), "exposure_range", None)
        if not (math.isfinite(exposure_ms) and exposure_ms > 0):
            raise self._refuse(action, f"the exposure must be above 0 ms, got {exposure_ms:g}")
        if limits is not None and not limits[0] <= exposure_ms <= limits[1]:
            raise self._refuse(action, f"{exposure_ms:g} ms is outside the camera's exposure "
                                       f"range ({limits[0]:g} to {limits[1]:g} ms)")
        self._do(action, lambda: setattr(device, "exposure_ms", exposure_ms))

    def snap(self, camera: str, timeout_s: float = 5.0,
             light: ExposureLight | None = None) -> Frame:
        """Take one frame: lit by `light` for its exposure only (the run's auto-shutter,
        devices.illuminator.light_exposures), or with the light as it is."""
        action: dict[str, Any] = {"device": camera, "action": "snap",
                                  **(light.as_record() if light else {})}
        self._check_free(action)
        device = self._device("camera", camera, action)
        lamp = self._lamp(light, action) if light else None
        action["exposure_ms"] = float(device.exposure_ms)
        return self._do(action, lambda: lit_snap(device, timeout_s, lamp, light))  # type: ignore[no-any-return]

    def live(self, camera: str, on: bool, light: ExposureLight | None = None) -> None:
        """Record that live view starts (refused while a run has the bench), lit by `light`
        for each exposure only (devices.illuminator.LiveExposures), or stops."""
        action: dict[str, Any] = {"device": camera, "action": "live on" if on else "live off",
                                  **(light.as_record() if light and on else {})}
        if on:
            self._check_free(action)
        device = self._device("camera", camera, action)
        lamp = self._lamp(light, action) if on and light else None
        action["exposure_ms"] = float(device.exposure_ms)
        was = self._live.pop(camera, None)
        if on:
            self._live[camera] = LiveExposures(device, lamp, light)
        self._emit("manual", **action)
        if was is not None:  # disarms a channel armed for it, unless a run has the light now
            was.stopped = True
            if not self.busy():
                was.stop()  # a device error: the caller's to show

    def live_frame(self, camera: str, timeout_s: float = 5.0) -> Frame:
        """The next live frame (not recorded frame by frame); refused once live view is off:
        stopped, or ended by an emergency stop or a run."""
        live = self._live.get(camera)
        why = self.busy() or (None if live else f"live view on {camera} is off")
        if why or live is None:
            raise ManualRefused(why)
        try:
            return live.frame(timeout_s)  # type: ignore[no-any-return]
        except LiveStopped as exc:
            raise ManualRefused(f"live view on {camera} is off") from exc

    def autofocus(self) -> float:
        """Focus with the bench's camera and stage on whatever light is on; returns the focal
        plane (um)."""
        camera, stage = self.rig.first("camera"), self.rig.first("stage")
        action = {"device": stage.name, "action": "autofocus", "camera": camera.name}
        self._check_free(action)
        z = float(self._do(action, lambda: autofocus(camera, stage)).z_um)
        self._emit("manual_result", device=stage.name, action="autofocus", z_um=round(z, 3))
        return z

    # -- valve ------------------------------------------------------------------------------
    def select_port(self, valve: str, port: int) -> None:
        """Turn a selector valve to `port` and wait until it is there."""
        action = {"device": valve, "action": "select", "port": port}
        self._check_free(action)
        device = self._device("valve", valve, action)
        if port not in device.ports:
            raise self._refuse(action, f"{valve} has no port {port} (ports {device.ports.start}"
                                       f" to {device.ports.stop - 1})")
        self._do(action, lambda: device.select(port))

    # -- stopping ---------------------------------------------------------------------------
    def emergency_stop(self, reason: str = "emergency stop") -> list[str]:
        """Every pump and light off now (the rig's halt), then recorded, manual flows booked
        as they stand; returns what could not be stopped."""
        for live in list(self._live.values()):
            live.stopped = True  # no live frame lights the sample again
        self._live.clear()
        stop = self.rig.safe_stop(reason, broadcast=True)
        failures = stop.failures
        with self._lock:
            flows, self._flows = self._flows, {}
        for flow in flows.values():  # the halt stopped them: book what each moved
            with contextlib.suppress(DeviceError):
                flow.stop()
            with contextlib.suppress(DeviceError, interlocks.Interlock):
                flow.finish(expect_full=False)
        self._emit("emergency_stop", reason=reason, failures=failures,
                   devices=stop.as_record()["devices"])
        return failures

    def close(self, reason: str = "session closed") -> None:
        """Book every flow still running (the engine has stopped the pumps) and close the
        session's record; a later action opens a new session."""
        self._stop_watching.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(5)
        with self._lock:
            for name, flow in list(self._flows.items()):
                with contextlib.suppress(DeviceError, interlocks.Interlock):
                    flow.stop()
                    flow.finish(expect_full=False)
                self._flows.pop(name, None)
            recorder, self.record = self.record, None
        if recorder is not None:
            self.events.record.disconnect(recorder.on_record)
            recorder.finish("completed", reason)
