"""ManualSession: every manual action (pumps from ManualFlows; light, stage, camera, valve,
stopping here)."""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

from chipctl.devices.autofocus import autofocus
from chipctl.devices.illuminator import ExposureLight, LiveExposures, LiveStopped, lit_snap
from chipctl.devices.interfaces import Frame
from chipctl.devices.stage import outside_travel
from chipctl.manual.base import ManualRefused
from chipctl.manual.flows import ManualFlows
from chipctl.run import interlocks
from drivers.errors import DeviceError


class ManualSession(ManualFlows):
    """Manual device work on one rig: checked, done, and recorded in a manual session."""

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
